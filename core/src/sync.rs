//! The one switch between `std` and `loom`.
//!
//! Every atomic, `Arc`, `Mutex`, `UnsafeCell` and thread used by lock-free
//! code is imported from here. Built with `--cfg resilience_loom`, the items
//! come from [loom](https://docs.rs/loom) so that the model checker can
//! explore every interleaving; otherwise they are `std`'s. A project-specific
//! cfg name (rather than `loom`) keeps dependencies that react to `cfg(loom)`
//! out of the model.
//!
//! Run the models with:
//!
//! ```text
//! RUSTFLAGS="--cfg resilience_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p resilience --profile loom --test 'loom_*'
//! ```

#[cfg(not(resilience_loom))]
pub use std::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(not(resilience_loom))]
pub use std::thread;

#[cfg(resilience_loom)]
pub use loom::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(resilience_loom)]
pub use loom::thread;

/// An `Arc<[T]>` holding a copy of `items`. loom's `Arc` cannot be built from
/// a slice directly, so code that shares immutable byte buffers goes through
/// this one function.
pub fn arc_slice<T: Clone>(items: &[T]) -> Arc<[T]> {
    #[cfg(not(resilience_loom))]
    return Arc::from(items);
    #[cfg(resilience_loom)]
    return Arc::from_std(std::sync::Arc::from(items));
}

/// Spin-loop hint that loom understands (it yields to other modelled threads).
#[inline]
pub fn spin_loop() {
    #[cfg(resilience_loom)]
    loom::thread::yield_now();
    #[cfg(not(resilience_loom))]
    std::hint::spin_loop();
}

/// An `UnsafeCell` with loom's closure-based API, so that loom can track every
/// access. Under `std` the closures compile down to plain pointer accesses.
///
/// Under `std` it is `repr(transparent)` over `std::cell::UnsafeCell<T>`, so a
/// slice of cells has the layout of a slice of `T` (the queues rely on this to
/// hand out contiguous slices).
#[derive(Debug)]
#[cfg_attr(not(resilience_loom), repr(transparent))]
pub struct UnsafeCell<T>(
    #[cfg(not(resilience_loom))] std::cell::UnsafeCell<T>,
    #[cfg(resilience_loom)] loom::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline]
    pub fn new(value: T) -> Self {
        #[cfg(not(resilience_loom))]
        return Self(std::cell::UnsafeCell::new(value));
        #[cfg(resilience_loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Runs `f` with a shared raw pointer to the contents.
    ///
    /// The caller guarantees, when dereferencing the pointer, that no mutable
    /// access runs concurrently.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(resilience_loom))]
        return f(self.0.get());
        #[cfg(resilience_loom)]
        return self.0.with(f);
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    ///
    /// The caller guarantees, when dereferencing the pointer, that no other
    /// access runs concurrently.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(resilience_loom))]
        return f(self.0.get());
        #[cfg(resilience_loom)]
        return self.0.with_mut(f);
    }

    /// Unwraps the value.
    #[inline]
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

/// Pads and aligns a value to 128 bytes so that two of them never share a
/// cache line (nor an adjacent-line prefetch pair, which is why it is 128 and
/// not 64 on x86-64 and aarch64; crossbeam's `CachePadded` explains the
/// measurements).
#[derive(Debug, Default)]
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), repr(align(64)))]
pub struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for CachePadded<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn cache_padded_is_a_line_apart() {
        let pair = [CachePadded(0u64), CachePadded(1u64)];
        let a = &pair[0] as *const _ as usize;
        let b = &pair[1] as *const _ as usize;
        assert!(b - a >= 64);
        assert_eq!(a % std::mem::align_of::<CachePadded<u64>>(), 0);
    }

    #[test]
    fn unsafe_cell_round_trips() {
        let c = UnsafeCell::new(5u32);
        // SAFETY: no other access to `c` exists in this test.
        c.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: as above, and the mutable access above has finished.
        assert_eq!(c.with(|p| unsafe { *p }), 6);
        assert_eq!(c.into_inner(), 6);
    }
}
