//! Library and ABI versions.

use std::ffi::c_char;

/// Major version of the library; also the SONAME suffix (libresilience.so.MAJOR).
pub const RSL_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const RSL_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const RSL_VERSION_PATCH: u32 = 0;
/// ABI version: raised on any incompatible change to a function signature,
/// struct layout or status code meaning. Hosts compare it with
/// `rsl_abi_version()` at startup.
pub const RSL_ABI_VERSION: u32 = 1;

/// Returns the library version as a static NUL-terminated string
/// "MAJOR.MINOR.PATCH". Never free it. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Returns the ABI version the loaded library implements (`RSL_ABI_VERSION`
/// of the header it was built with). A host built against a header with a
/// different `RSL_ABI_VERSION` must not use the library. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_abi_version() -> u32 {
    RSL_ABI_VERSION
}

/// Panics inside the library on purpose and returns the status the boundary
/// turns it into: always `RSL_ERR_PANIC`, with the panic text in
/// `rsl_last_error()`. A test hook that lets host test suites prove that no
/// panic crosses the C boundary. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_selftest_panic() -> crate::status::rsl_status {
    crate::boundary::boundary(|| panic!("rsl_selftest_panic: deliberate panic"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_constants_agree_with_cargo_toml() {
        let v = format!("{RSL_VERSION_MAJOR}.{RSL_VERSION_MINOR}.{RSL_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: rsl_version returns a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(rsl_version()) }.to_str().unwrap(), v);
    }

    #[test]
    fn panics_become_a_status_with_the_message() {
        assert_eq!(rsl_selftest_panic(), crate::status::RSL_ERR_PANIC);
        // SAFETY: rsl_last_error returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(crate::boundary::rsl_last_error()) };
        assert!(msg.to_str().unwrap().contains("deliberate panic"));
    }
}
