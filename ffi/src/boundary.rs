//! Panic containment and the thread-local last-error message.
//!
//! Every exported body runs inside [`boundary`] (or [`boundary_or`] for
//! functions without a status): a panic becomes `RSL_ERR_PANIC` and its text
//! becomes the thread's last error, so no unwind ever crosses into C.

#![allow(dead_code)] // helpers are used by the per-type files as each lands

use crate::status::{rsl_status, RSL_ERR_PANIC, RSL_OK};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// The result type of a boundary body: `Err` carries the status to return.
pub type Result<T = ()> = std::result::Result<T, rsl_status>;

/// Records `msg` as this thread's last error and returns `status`, for
/// `return Err(fail(RSL_ERR_INVALID_ARG, "capacity must be > 0"))`.
pub fn fail(status: rsl_status, msg: impl Into<String>) -> rsl_status {
    set_last_error(msg.into());
    status
}

/// Replaces this thread's last-error message.
pub fn set_last_error(msg: String) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: in a host's pthread-key destructor, which glibc runs after
    // Rust's thread-locals are gone, the message is dropped rather than
    // panicking (a panic there, outside any catch, would abort the host).
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs `body`; returns `RSL_OK` on `Ok`, the status on `Err`, and
/// `RSL_ERR_PANIC` (with the panic text as last error) on a panic.
#[inline]
pub fn boundary(body: impl FnOnce() -> Result) -> rsl_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RSL_OK,
        Ok(Err(status)) => status,
        Err(payload) => {
            set_last_error(format!("panic: {}", panic_text(&*payload)));
            RSL_ERR_PANIC
        }
    }
}

/// Runs `body` for a function without a status: a panic returns `fallback`
/// (NULL, 0, ...) and records the panic text as last error.
#[inline]
pub fn boundary_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(format!("panic: {}", panic_text(&*payload)));
            fallback
        }
    }
}

/// Returns this thread's last error message: detail for the most recent
/// failing call on this thread ("" if none has failed yet).
///
/// Ownership: the string belongs to the library and stays valid until the
/// next libresilience call on the same thread; copy it to keep it. Never
/// free it. Thread-safe (each thread has its own message). Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_last_error() -> *const c_char {
    // Past the thread-local's destruction (a host's pthread-key destructor):
    // a static empty string instead of a panic, which would abort here.
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}
