//! `rsl_status`: the result code of every fallible call, and `rsl_status_str`.

use std::ffi::c_char;

/// Result code of every fallible libresilience call. `RSL_OK` is 0.
///
/// Codes are grouped in ranges and never renumbered once released:
/// 1-99 bad arguments, 100-199 capacity and state answers, 200-299 runtime
/// and I/O, 900-999 internal failures.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rsl_status {
    /// Success; out-parameters were written.
    RSL_OK = 0,
    /// A required pointer argument was NULL.
    RSL_ERR_NULL_ARG = 1,
    /// An argument was out of range or inconsistent (see `rsl_last_error`).
    RSL_ERR_INVALID_ARG = 2,
    /// An output buffer was too small; the needed size was written to the
    /// call's `*_len_out` parameter.
    RSL_ERR_BUFFER_TOO_SMALL = 3,
    /// A length (key, value, batch) exceeded the documented maximum.
    RSL_ERR_TOO_LARGE = 4,
    /// The container is full: nothing was added.
    RSL_ERR_FULL = 100,
    /// The container is empty: nothing was removed.
    RSL_ERR_EMPTY = 101,
    /// The key was not found.
    RSL_ERR_NOT_FOUND = 102,
    /// The call was refused by policy (breaker open, bulkhead full, limiter
    /// denied); retry-after facts are in the call's out-parameter.
    RSL_ERR_REJECTED = 103,
    /// A wait ran out of time.
    RSL_ERR_TIMEOUT = 104,
    /// The caller does not own the record (wrong token, or its lease expired
    /// and another caller took over).
    RSL_ERR_NOT_OWNER = 105,
    /// Same idempotency key, different request fingerprint.
    RSL_ERR_MISMATCH = 106,
    /// A permit or token from an earlier generation; nothing was recorded.
    RSL_ERR_STALE = 107,
    /// The other side of a queue was dropped.
    RSL_ERR_CLOSED = 108,
    /// An I/O error (the message says which).
    RSL_ERR_IO = 200,
    /// io_uring is unavailable (kernel, sysctl or seccomp): the message says
    /// how to enable it.
    RSL_ERR_IO_URING_UNAVAILABLE = 201,
    /// The engine is already running or already stopped.
    RSL_ERR_ENGINE_STATE = 202,
    /// A panic inside the library was caught at the boundary; the message
    /// holds its text. The handle involved may be in an unspecified but safe
    /// state.
    RSL_ERR_PANIC = 900,
    /// Memory could not be allocated.
    RSL_ERR_ALLOC = 901,
    /// An internal invariant failed; please report it.
    RSL_ERR_INTERNAL = 902,
}

pub use rsl_status::*;

impl rsl_status {
    /// Every code, for tests and for `rsl_status_str`.
    pub const ALL: &'static [rsl_status] = &[
        RSL_OK,
        RSL_ERR_NULL_ARG,
        RSL_ERR_INVALID_ARG,
        RSL_ERR_BUFFER_TOO_SMALL,
        RSL_ERR_TOO_LARGE,
        RSL_ERR_FULL,
        RSL_ERR_EMPTY,
        RSL_ERR_NOT_FOUND,
        RSL_ERR_REJECTED,
        RSL_ERR_TIMEOUT,
        RSL_ERR_NOT_OWNER,
        RSL_ERR_MISMATCH,
        RSL_ERR_STALE,
        RSL_ERR_CLOSED,
        RSL_ERR_IO,
        RSL_ERR_IO_URING_UNAVAILABLE,
        RSL_ERR_ENGINE_STATE,
        RSL_ERR_PANIC,
        RSL_ERR_ALLOC,
        RSL_ERR_INTERNAL,
    ];

    /// The code's name and meaning, NUL-terminated.
    pub const fn message(self) -> &'static str {
        match self {
            RSL_OK => "RSL_OK: success\0",
            RSL_ERR_NULL_ARG => "RSL_ERR_NULL_ARG: a required pointer argument was NULL\0",
            RSL_ERR_INVALID_ARG => "RSL_ERR_INVALID_ARG: an argument was out of range\0",
            RSL_ERR_BUFFER_TOO_SMALL => "RSL_ERR_BUFFER_TOO_SMALL: the output buffer is too small\0",
            RSL_ERR_TOO_LARGE => "RSL_ERR_TOO_LARGE: a length exceeds the maximum\0",
            RSL_ERR_FULL => "RSL_ERR_FULL: full, nothing was added\0",
            RSL_ERR_EMPTY => "RSL_ERR_EMPTY: empty, nothing was removed\0",
            RSL_ERR_NOT_FOUND => "RSL_ERR_NOT_FOUND: no such key\0",
            RSL_ERR_REJECTED => "RSL_ERR_REJECTED: refused by policy\0",
            RSL_ERR_TIMEOUT => "RSL_ERR_TIMEOUT: the wait ran out of time\0",
            RSL_ERR_NOT_OWNER => "RSL_ERR_NOT_OWNER: the caller does not own the record\0",
            RSL_ERR_MISMATCH => "RSL_ERR_MISMATCH: same key, different request fingerprint\0",
            RSL_ERR_STALE => "RSL_ERR_STALE: permit from an earlier generation, not recorded\0",
            RSL_ERR_CLOSED => "RSL_ERR_CLOSED: the other side was dropped\0",
            RSL_ERR_IO => "RSL_ERR_IO: I/O error\0",
            RSL_ERR_IO_URING_UNAVAILABLE => "RSL_ERR_IO_URING_UNAVAILABLE: io_uring is unavailable\0",
            RSL_ERR_ENGINE_STATE => "RSL_ERR_ENGINE_STATE: the engine is not in a state for this call\0",
            RSL_ERR_PANIC => "RSL_ERR_PANIC: a panic was caught at the library boundary\0",
            RSL_ERR_ALLOC => "RSL_ERR_ALLOC: out of memory\0",
            RSL_ERR_INTERNAL => "RSL_ERR_INTERNAL: internal error\0",
        }
    }

    /// Maps a plain integer from C to a code, if it is one.
    pub fn from_i32(code: i32) -> Option<rsl_status> {
        Self::ALL.iter().copied().find(|s| *s as i32 == code)
    }
}

/// Returns a static, NUL-terminated description of `code` (its name and
/// meaning), or "unknown status code" for a value that is not a code.
///
/// Ownership: the string is static; never free it. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_status_str(code: i32) -> *const c_char {
    let msg = match rsl_status::from_i32(code) {
        Some(s) => s.message(),
        None => "unknown status code\0",
    };
    msg.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_code_has_a_distinct_named_message() {
        let mut seen = std::collections::HashSet::new();
        for &s in rsl_status::ALL {
            assert!(seen.insert(s as i32));
            // SAFETY: rsl_status_str returns a static NUL-terminated string.
            let m = unsafe { CStr::from_ptr(rsl_status_str(s as i32)) }.to_str().unwrap();
            assert!(m.starts_with(&format!("{s:?}")), "{m}");
            assert_eq!(rsl_status::from_i32(s as i32), Some(s));
        }
        // SAFETY: as above.
        let m = unsafe { CStr::from_ptr(rsl_status_str(-7)) };
        assert_eq!(m.to_str().unwrap(), "unknown status code");
    }
}
