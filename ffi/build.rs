//! Gives the shared library a SONAME carrying the major version
//! (libresilience.so.0), so an incompatible release is never loaded by mistake.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libresilience.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
