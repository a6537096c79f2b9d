//! `rsl_spsc_producer` / `rsl_spsc_consumer` and `rsl_mpmc`: bounded
//! lock-free queues of `uint64_t` payloads (integers, indices or pointers
//! cast to `uintptr_t`).
//!
//! The queues never own what a payload points to: when a queue is freed with
//! payloads still inside, they are simply dropped, so a host that queues
//! pointers must drain the queue (or otherwise free what they point to) first.

use crate::boundary::{boundary, fail, Result};
use crate::handle::{self, opaque};
use crate::status::{
    rsl_status, RSL_ERR_ALLOC, RSL_ERR_CLOSED, RSL_ERR_EMPTY, RSL_ERR_FULL, RSL_ERR_INVALID_ARG,
};
use resilience::queue::{mpmc, spsc, CapacityError};

/// Largest capacity accepted by the queue constructors (2^30 slots).
pub const RSL_QUEUE_MAX_CAPACITY: usize = 1 << 30;

/// The producing end of a single-producer single-consumer queue. Use it
/// from one thread at a time (it may move between threads).
#[allow(non_camel_case_types)]
pub struct rsl_spsc_producer {
    _private: [u8; 0],
}
opaque!(rsl_spsc_producer => spsc::Producer<u64>);

/// The consuming end of a single-producer single-consumer queue. Use it
/// from one thread at a time (it may move between threads).
#[allow(non_camel_case_types)]
pub struct rsl_spsc_consumer {
    _private: [u8; 0],
}
opaque!(rsl_spsc_consumer => spsc::Consumer<u64>);

/// A multi-producer multi-consumer queue; every function on it is
/// thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_mpmc {
    _private: [u8; 0],
}
opaque!(rsl_mpmc => mpmc::Ring<u64>);

/// The status for a ring that could not be made: `RSL_ERR_ALLOC` when its
/// memory could not be allocated, `RSL_ERR_INVALID_ARG` otherwise.
pub(crate) fn capacity_error(e: CapacityError) -> rsl_status {
    match e {
        CapacityError::OutOfMemory { .. } => fail(RSL_ERR_ALLOC, e.to_string()),
        _ => fail(RSL_ERR_INVALID_ARG, e.to_string()),
    }
}

/// Refuses a capacity of 0 or above [`RSL_QUEUE_MAX_CAPACITY`] with
/// `RSL_ERR_INVALID_ARG` (shared by every queue constructor).
pub(crate) fn check_capacity(capacity: usize) -> Result {
    if capacity == 0 || capacity > RSL_QUEUE_MAX_CAPACITY {
        return Err(fail(
            RSL_ERR_INVALID_ARG,
            format!("capacity {capacity} is outside 1..={RSL_QUEUE_MAX_CAPACITY}"),
        ));
    }
    Ok(())
}

/// Writes `len` to `len_out` and `capacity` to `capacity_out`, skipping
/// either when NULL (the `*_len` functions of every queue).
pub(crate) fn write_len(
    len_out: *mut usize,
    len: usize,
    capacity_out: *mut usize,
    capacity: usize,
) -> Result {
    if !len_out.is_null() {
        handle::write(len_out, len, "len_out")?;
    }
    if !capacity_out.is_null() {
        handle::write(capacity_out, capacity, "capacity_out")?;
    }
    Ok(())
}

/// Creates a wait-free SPSC queue holding at least `capacity` payloads
/// (rounded up to a power of two) and returns its two ends.
///
/// Ownership: the caller owns both ends and frees each with its `_free`;
/// the queue's memory is released when both are freed.
/// Thread-safety: thread-safe (creates new objects).
/// Returns RSL_ERR_NULL_ARG if an out-pointer is NULL, RSL_ERR_INVALID_ARG if
/// `capacity` is 0 or above RSL_QUEUE_MAX_CAPACITY, RSL_ERR_ALLOC if its
/// memory cannot be allocated, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_new(
    capacity: usize,
    producer_out: *mut *mut rsl_spsc_producer,
    consumer_out: *mut *mut rsl_spsc_consumer,
) -> rsl_status {
    boundary(|| {
        handle::require_out(producer_out, "producer_out")?;
        handle::require_out(consumer_out, "consumer_out")?;
        check_capacity(capacity)?;
        let (p, c) = spsc::Ring::<u64>::try_new(capacity).map_err(capacity_error)?;
        handle::write(producer_out, handle::into_raw(p), "producer_out")?;
        handle::write(consumer_out, handle::into_raw(c), "consumer_out")
    })
}

/// Frees the producing end. NULL is a no-op. Not thread-safe with other
/// calls on the same producer.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_producer_free(producer: *mut rsl_spsc_producer) {
    crate::boundary::boundary_or((), || handle::free(producer))
}

/// Frees the consuming end. NULL is a no-op. Not thread-safe with other
/// calls on the same consumer.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_consumer_free(consumer: *mut rsl_spsc_consumer) {
    crate::boundary::boundary_or((), || handle::free(consumer))
}

/// Pushes one payload. Wait-free; never blocks or allocates.
///
/// Thread-safety: one thread at a time per producer.
/// Returns RSL_ERR_FULL (nothing added) when the queue is full, or
/// RSL_ERR_CLOSED instead when it is full because the consumer was freed;
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_push(producer: *mut rsl_spsc_producer, value: u64) -> rsl_status {
    boundary(|| {
        let p = handle::borrow_mut(producer)?;
        match p.push(value) {
            Ok(()) => Ok(()),
            Err(_) if p.is_abandoned() => Err(fail(RSL_ERR_CLOSED, "the consumer was freed")),
            Err(_) => Err(RSL_ERR_FULL),
        }
    })
}

/// Pushes up to `len` payloads from `values` in order and writes how many
/// were pushed to `pushed_out` (fewer than `len` when the queue fills up).
///
/// Thread-safety: one thread at a time per producer.
/// Returns RSL_ERR_NULL_ARG (`values` NULL with `len` > 0, or `pushed_out`
/// NULL), RSL_ERR_TOO_LARGE, RSL_ERR_CLOSED when not everything fit because
/// the consumer was freed (the count is then not written), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_push_many(
    producer: *mut rsl_spsc_producer,
    values: *const u64,
    len: usize,
    pushed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let p = handle::borrow_mut(producer)?;
        handle::require_out(pushed_out, "pushed_out")?;
        let values = handle::slice(values, len, "values")?;
        let n = p.push_slice(values);
        if n < values.len() && p.is_abandoned() {
            return Err(fail(RSL_ERR_CLOSED, "the consumer was freed"));
        }
        handle::write(pushed_out, n, "pushed_out")
    })
}

/// Pops one payload into `value_out`. Wait-free.
///
/// Thread-safety: one thread at a time per consumer.
/// Returns RSL_ERR_EMPTY (nothing written) when the queue is empty,
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_pop(consumer: *mut rsl_spsc_consumer, value_out: *mut u64) -> rsl_status {
    boundary(|| {
        let c = handle::borrow_mut(consumer)?;
        handle::require_out(value_out, "value_out")?;
        match c.pop() {
            Some(v) => handle::write(value_out, v, "value_out"),
            None => Err(RSL_ERR_EMPTY),
        }
    })
}

/// Pops up to `cap` payloads into `values_out` in order and writes how many
/// were popped to `popped_out` (0 when empty; that is still RSL_OK).
///
/// Thread-safety: one thread at a time per consumer.
/// Returns RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_pop_many(
    consumer: *mut rsl_spsc_consumer,
    values_out: *mut u64,
    cap: usize,
    popped_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let c = handle::borrow_mut(consumer)?;
        handle::require_out(popped_out, "popped_out")?;
        let out = handle::slice_mut(values_out, cap, "values_out")?;
        let chunk = c.read_chunk(out.len());
        let (a, b) = chunk.as_slices();
        let n = a.len() + b.len();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..n].copy_from_slice(b);
        chunk.commit_all();
        handle::write(popped_out, n, "popped_out")
    })
}

/// Writes the number of queued payloads, as seen by the producer, to
/// `len_out`, and the capacity to `capacity_out` (either may be NULL).
///
/// Thread-safety: one thread at a time per producer.
/// Returns RSL_ERR_NULL_ARG if `producer` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_producer_len(
    producer: *mut rsl_spsc_producer,
    len_out: *mut usize,
    capacity_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let p = handle::borrow_mut(producer)?;
        write_len(len_out, p.len(), capacity_out, p.capacity())
    })
}

/// Writes the number of queued payloads, as seen by the consumer, to
/// `len_out`. Thread-safety: one thread at a time per consumer.
/// Returns RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_spsc_consumer_len(consumer: *mut rsl_spsc_consumer, len_out: *mut usize) -> rsl_status {
    boundary(|| {
        let c = handle::borrow_mut(consumer)?;
        handle::write(len_out, c.len(), "len_out")
    })
}

/// Creates an MPMC queue holding at least `capacity` payloads (rounded up to
/// a power of two).
///
/// Ownership: the caller owns the queue and frees it with rsl_mpmc_free.
/// Thread-safety: thread-safe. Returns RSL_ERR_NULL_ARG if `queue_out` is
/// NULL, RSL_ERR_INVALID_ARG if `capacity` is 0 or above
/// RSL_QUEUE_MAX_CAPACITY, RSL_ERR_ALLOC if its memory cannot be allocated,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_new(capacity: usize, queue_out: *mut *mut rsl_mpmc) -> rsl_status {
    boundary(|| {
        handle::require_out(queue_out, "queue_out")?;
        check_capacity(capacity)?;
        let q = mpmc::Ring::<u64>::try_new(capacity).map_err(capacity_error)?;
        handle::write(queue_out, handle::into_raw(q), "queue_out")
    })
}

/// Frees the queue. NULL is a no-op. No other call on the queue may run
/// concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_free(queue: *mut rsl_mpmc) {
    crate::boundary::boundary_or((), || handle::free(queue))
}

/// Pushes one payload; lock-free, never blocks or allocates.
/// Thread-safe. Returns RSL_ERR_FULL (nothing added) when full,
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_push(queue: *const rsl_mpmc, value: u64) -> rsl_status {
    boundary(|| handle::borrow(queue)?.try_push(value).map_err(|_| RSL_ERR_FULL))
}

/// Pops one payload into `value_out`; lock-free. Thread-safe.
/// Returns RSL_ERR_EMPTY (nothing written) when empty, RSL_ERR_NULL_ARG,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_pop(queue: *const rsl_mpmc, value_out: *mut u64) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(value_out, "value_out")?;
        match q.try_pop() {
            Some(v) => handle::write(value_out, v, "value_out"),
            None => Err(RSL_ERR_EMPTY),
        }
    })
}

/// Pushes up to `len` payloads in order, stopping at the first that does not
/// fit, and writes how many were pushed to `pushed_out`. Thread-safe (items
/// of concurrent producers may interleave). Returns RSL_ERR_NULL_ARG,
/// RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_push_many(
    queue: *const rsl_mpmc,
    values: *const u64,
    len: usize,
    pushed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(pushed_out, "pushed_out")?;
        let values = handle::slice(values, len, "values")?;
        handle::write(pushed_out, q.push_slice(values), "pushed_out")
    })
}

/// Pops up to `cap` payloads into `values_out` and writes how many were
/// popped to `popped_out` (0 when empty; still RSL_OK). Thread-safe.
/// Returns RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_pop_many(
    queue: *const rsl_mpmc,
    values_out: *mut u64,
    cap: usize,
    popped_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(popped_out, "popped_out")?;
        let out = handle::slice_mut(values_out, cap, "values_out")?;
        handle::write(popped_out, q.pop_slice(out), "popped_out")
    })
}

/// Writes the approximate number of queued payloads to `len_out` and the
/// capacity to `capacity_out` (either may be NULL). Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `queue` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_mpmc_len(
    queue: *const rsl_mpmc,
    len_out: *mut usize,
    capacity_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        write_len(len_out, q.len(), capacity_out, q.capacity())
    })
}
