//! The one place that casts between opaque C handles and Rust values, and
//! that reads and writes raw pointers handed in by C.
//!
//! A handle is a `Box<T>` turned into a raw pointer of its opaque C type
//! (`*mut rsl_cache` for a `Box<Cache>`). [`Opaque`] ties each C type to its
//! Rust type, so a handle can only ever be read back as what it was made from.

#![allow(dead_code)] // helpers are used by the per-type files as each lands

use crate::boundary::{fail, Result};
use crate::status::{rsl_status, RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE};
use std::sync::Arc;

/// Ties a zero-sized `#[repr(C)]` handle type to the Rust value behind it.
///
/// # Safety
/// Implement only for a zero-sized opaque marker type whose pointers are
/// produced solely by [`into_raw`] with the same `Target`.
pub unsafe trait Opaque {
    /// The Rust value a handle of this type points to.
    type Target;
    /// The C name, for error messages.
    const NAME: &'static str;
}

/// Ties a handle type to its Rust target. The handle type itself is written
/// out in full where it is used (cbindgen does not expand macros): a struct
/// with one private zero-sized field and no `#[repr(C)]`, which cbindgen
/// emits as an opaque `typedef struct rsl_x rsl_x;`.
macro_rules! opaque {
    ($name:ident => $target:ty) => {
        // SAFETY: `$name` is zero-sized and only ever made by
        // `handle::into_raw` from a `Box<$target>`.
        unsafe impl $crate::handle::Opaque for $name {
            type Target = $target;
            const NAME: &'static str = stringify!($name);
        }
    };
}
pub(crate) use opaque;

/// Ties a zero-sized handle type to a value shared through an [`Arc`]: the
/// handle is `Arc::into_raw`, each handle owns one strong reference, and
/// several handles (and Rust owners, such as a registry) may share the value.
///
/// # Safety
/// Implement only for a zero-sized opaque marker type whose pointers are
/// produced solely by [`into_raw_arc`] or [`clone_arc`] with the same
/// `Target`, and never for a type that also implements [`Opaque`].
pub unsafe trait SharedOpaque {
    /// The Rust value a handle of this type points to.
    type Target;
    /// The C name, for error messages.
    const NAME: &'static str;
}

/// Ties an `Arc`-shared handle type to its Rust target (see [`opaque!`]).
macro_rules! shared_opaque {
    ($name:ident => $target:ty) => {
        // SAFETY: `$name` is zero-sized and only ever made by
        // `handle::into_raw_arc` / `handle::clone_arc` from an `Arc<$target>`.
        unsafe impl $crate::handle::SharedOpaque for $name {
            type Target = $target;
            const NAME: &'static str = stringify!($name);
        }
    };
}
pub(crate) use shared_opaque;

/// Hands one strong reference of `value` to C as a handle.
pub fn into_raw_arc<H: SharedOpaque>(value: Arc<H::Target>) -> *mut H {
    Arc::into_raw(value).cast_mut().cast()
}

/// Borrows the value behind a shared handle; `RSL_ERR_NULL_ARG` if NULL.
pub fn borrow_arc<'a, H: SharedOpaque>(handle: *const H) -> Result<&'a H::Target> {
    if handle.is_null() {
        return Err(null_handle(H::NAME));
    }
    // SAFETY: non-NULL, and by the C contract it came from `into_raw_arc` /
    // `clone_arc` and was not freed, so it owns a strong reference that keeps
    // the value alive for the duration of the call; only `&` is handed out.
    Ok(unsafe { &*handle.cast::<H::Target>() })
}

/// [`borrow_arc`] for a fast path that falls back to the checked call: `None`
/// for NULL, and no error recorded (the fallback reports it).
#[inline(always)]
pub fn peek_arc<'a, H: SharedOpaque>(handle: *const H) -> Option<&'a H::Target> {
    // SAFETY: as in `borrow_arc`: a non-NULL handle is live by the C contract
    // and keeps its value alive for the call; only `&` is handed out.
    (!handle.is_null()).then(|| unsafe { &*handle.cast::<H::Target>() })
}

/// A new handle sharing the value of `handle` (one more strong reference).
pub fn clone_arc<H: SharedOpaque>(handle: *const H) -> Result<*mut H> {
    borrow_arc(handle)?;
    let ptr = handle.cast::<H::Target>();
    // SAFETY: `ptr` came from `Arc::into_raw` of an `Arc<H::Target>` (C
    // contract, checked non-NULL above) and that reference is still held.
    unsafe { Arc::increment_strong_count(ptr) };
    Ok(handle.cast_mut())
}

/// Releases the strong reference a shared handle owns; NULL is a no-op.
pub fn free_arc<H: SharedOpaque>(handle: *mut H) {
    if handle.is_null() {
        return;
    }
    // SAFETY: non-NULL and, by the C contract, made by `into_raw_arc` or
    // `clone_arc` and not yet freed: this gives back exactly its reference.
    drop(unsafe { Arc::from_raw(handle.cast_const().cast::<H::Target>()) });
}

/// Moves `value` to the heap and returns it as a handle for C.
pub fn into_raw<H: Opaque>(value: H::Target) -> *mut H {
    Box::into_raw(Box::new(value)).cast()
}

/// Borrows the value behind a handle; `RSL_ERR_NULL_ARG` if it is NULL.
///
/// The C contract (stated on every function) is that a non-NULL handle came
/// from the matching `_new` and has not been freed; that cannot be checked.
pub fn borrow<'a, H: Opaque>(handle: *const H) -> Result<&'a H::Target> {
    if handle.is_null() {
        return Err(null_handle(H::NAME));
    }
    // SAFETY: non-NULL, and by the C contract it points to a live
    // `Box<H::Target>` made by `into_raw`; shared access is all we hand out.
    Ok(unsafe { &*handle.cast::<H::Target>() })
}

/// Borrows the value behind a handle mutably (single-owner handles such as
/// SPSC queue ends, whose functions are documented as not thread-safe).
pub fn borrow_mut<'a, H: Opaque>(handle: *mut H) -> Result<&'a mut H::Target> {
    if handle.is_null() {
        return Err(null_handle(H::NAME));
    }
    // SAFETY: non-NULL and live by the C contract; the function using this
    // is documented as requiring exclusive use of the handle by one thread.
    Ok(unsafe { &mut *handle.cast::<H::Target>() })
}

/// Frees a handle made by [`into_raw`]; NULL is a no-op.
pub fn free<H: Opaque>(handle: *mut H) {
    if handle.is_null() {
        return;
    }
    // SAFETY: non-NULL and, by the C contract, made by `into_raw` and not yet
    // freed; ownership returns to Rust exactly once here.
    drop(unsafe { Box::from_raw(handle.cast::<H::Target>()) });
}

/// Writes `value` through an out-pointer; `RSL_ERR_NULL_ARG` if NULL.
pub fn write<T>(out: *mut T, value: T, name: &str) -> Result {
    if out.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-NULL; the C contract is that it points to writable,
    // properly aligned memory for a `T`. `write` does not drop the old bytes.
    unsafe { out.write(value) };
    Ok(())
}

/// [`write`] for a fast path: false (nothing written, no error recorded)
/// for NULL, so that the checked fallback reports it.
#[inline(always)]
pub fn try_write<T>(out: *mut T, value: T) -> bool {
    if out.is_null() {
        return false;
    }
    // SAFETY: as in `write`: non-NULL, writable and aligned by the C contract.
    unsafe { out.write(value) };
    true
}

/// A `#[repr(C)]` struct of integers and floats that C fills in: every bit
/// pattern (padding included) is a valid value, so reading one from C
/// memory can never produce an invalid Rust value.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs whose fields are all integers,
/// floats or arrays of them (no `bool`, enum, reference or pointer field).
pub unsafe trait Plain: Copy {}

/// Reads a [`Plain`] struct from C by value; `Ok(None)` if `ptr` is NULL.
pub fn read_plain<T: Plain>(ptr: *const T, name: &str) -> Result<Option<T>> {
    if ptr.is_null() {
        return Ok(None);
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(misaligned(name));
    }
    // SAFETY: non-NULL and aligned; by the C contract it points to a readable,
    // initialised `T`, and `T: Plain` makes any bit pattern of its fields a
    // valid value (padding bytes are never read as fields).
    Ok(Some(unsafe { ptr.read() }))
}

/// Checks an out-pointer is non-NULL before any work is done, so outputs can
/// be written only on success.
pub fn require_out<T>(out: *mut T, name: &str) -> Result {
    if out.is_null() {
        return Err(null_arg(name));
    }
    Ok(())
}

/// Largest byte buffer accepted from C (keys, values, elements): 1 GiB.
pub const RSL_MAX_BYTES: usize = 1 << 30;

/// Borrows `len` bytes at `ptr`. NULL is accepted only with `len == 0`.
pub fn bytes<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null_with_len(name, len));
    }
    if len > RSL_MAX_BYTES {
        return Err(too_many_bytes(name, len));
    }
    // SAFETY: non-NULL, `len` <= 1 GiB (< isize::MAX), and by the C contract
    // `ptr` points to `len` readable bytes that stay unchanged during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a C array of `len` `T`s at `ptr` (NULL allowed only when empty).
pub fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null_with_len(name, len));
    }
    if len > RSL_MAX_BYTES / std::mem::size_of::<T>().max(1) {
        return Err(too_many_items(name, len));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(misaligned(name));
    }
    // SAFETY: non-NULL, aligned, bounded size; by the C contract it points to
    // `len` initialised `T`s that stay unchanged during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a writable C array of `len` `T`s at `ptr` (NULL only when empty).
pub fn slice_mut<'a, T>(ptr: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(null_with_len(name, len));
    }
    if len > RSL_MAX_BYTES / std::mem::size_of::<T>().max(1) {
        return Err(too_many_items(name, len));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(misaligned(name));
    }
    // SAFETY: non-NULL, aligned, bounded; by the C contract it points to `len`
    // writable `T`s not accessed by anyone else during the call. Callers only
    // write plain-old-data `T`s, so uninitialised input memory is fine.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Copies `src` into the caller's buffer `dst` of capacity `cap`, writing the
/// needed length to `len_out` either way. Returns `RSL_ERR_BUFFER_TOO_SMALL`
/// (nothing copied) when `cap < src.len()`.
pub fn copy_out(src: &[u8], dst: *mut u8, cap: usize, len_out: *mut usize) -> Result {
    require_out(len_out, "len_out")?;
    if cap < src.len() {
        write(len_out, src.len(), "len_out")?;
        return Err(buffer_too_small(cap, src.len()));
    }
    if !src.is_empty() {
        let out = slice_mut(dst, src.len(), "buffer")?;
        out.copy_from_slice(src);
    }
    write(len_out, src.len(), "len_out")
}

/// Maps a status to itself with a message (helper for `?` chains).
pub fn status_with(status: rsl_status, msg: impl Into<String>) -> rsl_status {
    fail(status, msg)
}

// The failure paths below are out of line and cold: formatting a message
// in the body of a hot call (a breaker acquire, a cache get) makes its
// prologue save registers and reserve stack for a path that is never taken.

#[cold]
#[inline(never)]
fn null_handle(name: &'static str) -> rsl_status {
    fail(RSL_ERR_NULL_ARG, format!("{name} handle is NULL"))
}

/// `RSL_ERR_NULL_ARG`: "`name` is NULL".
#[cold]
#[inline(never)]
pub fn null_arg(name: &str) -> rsl_status {
    fail(RSL_ERR_NULL_ARG, format!("{name} is NULL"))
}

#[cold]
#[inline(never)]
fn misaligned(name: &str) -> rsl_status {
    fail(crate::status::RSL_ERR_INVALID_ARG, format!("{name} is misaligned"))
}

#[cold]
#[inline(never)]
fn null_with_len(name: &str, len: usize) -> rsl_status {
    fail(RSL_ERR_NULL_ARG, format!("{name} is NULL with length {len}"))
}

#[cold]
#[inline(never)]
fn too_many_bytes(name: &str, len: usize) -> rsl_status {
    fail(RSL_ERR_TOO_LARGE, format!("{name} length {len} exceeds {RSL_MAX_BYTES}"))
}

#[cold]
#[inline(never)]
fn too_many_items(name: &str, len: usize) -> rsl_status {
    fail(RSL_ERR_TOO_LARGE, format!("{name} count {len} is too large"))
}

/// `RSL_ERR_BUFFER_TOO_SMALL`: "buffer holds `cap` bytes, `needed` needed".
#[cold]
#[inline(never)]
pub fn buffer_too_small(cap: usize, needed: usize) -> rsl_status {
    fail(crate::status::RSL_ERR_BUFFER_TOO_SMALL, format!("buffer holds {cap} bytes, {needed} needed"))
}
