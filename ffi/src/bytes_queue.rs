//! `rsl_bytes_queue`: a bounded lock-free MPMC queue of byte messages of
//! 0..=`max_len` bytes, copied in on push and out on pop (the queue never
//! keeps a pointer to caller memory).

use crate::boundary::{boundary, fail};
use crate::handle::{self, opaque};
use crate::queue::{check_capacity, write_len};
use crate::status::{
    rsl_status, RSL_ERR_BUFFER_TOO_SMALL, RSL_ERR_EMPTY, RSL_ERR_FULL, RSL_ERR_INVALID_ARG, RSL_ERR_TOO_LARGE,
};
use resilience::queue::bytes::{BytesQueue, PopError, PushError};

/// Largest `max_len` accepted by rsl_bytes_queue_new (16 MiB).
pub const RSL_BYTES_QUEUE_MAX_LEN: usize = 1 << 24;

/// A multi-producer multi-consumer queue of byte messages; every function
/// on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_bytes_queue {
    _private: [u8; 0],
}
opaque!(rsl_bytes_queue => BytesQueue);

fn push_error(e: PushError) -> rsl_status {
    match e {
        PushError::Full => RSL_ERR_FULL,
        PushError::TooLarge => fail(RSL_ERR_TOO_LARGE, "message is longer than the queue's max_len"),
    }
}

/// Creates a queue of at least `capacity` messages (rounded up to a power
/// of two) of at most `max_len` bytes each. All memory is allocated here.
///
/// Ownership: the caller owns the queue and frees it with
/// rsl_bytes_queue_free.
/// Thread-safety: thread-safe (creates a new object).
/// Returns RSL_ERR_NULL_ARG if `queue_out` is NULL, RSL_ERR_INVALID_ARG if
/// `capacity` is 0 or above RSL_QUEUE_MAX_CAPACITY or `max_len` is above
/// RSL_BYTES_QUEUE_MAX_LEN, RSL_ERR_ALLOC if the memory cannot be allocated,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_new(
    capacity: usize,
    max_len: usize,
    queue_out: *mut *mut rsl_bytes_queue,
) -> rsl_status {
    boundary(|| {
        handle::require_out(queue_out, "queue_out")?;
        check_capacity(capacity)?;
        if max_len > RSL_BYTES_QUEUE_MAX_LEN {
            return Err(fail(
                RSL_ERR_INVALID_ARG,
                format!("max_len {max_len} exceeds {RSL_BYTES_QUEUE_MAX_LEN}"),
            ));
        }
        let q = BytesQueue::try_new(capacity, max_len).map_err(crate::queue::capacity_error)?;
        handle::write(queue_out, handle::into_raw(q), "queue_out")
    })
}

/// Frees the queue and any messages still in it. NULL is a no-op. No other
/// call on the queue may run concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_free(queue: *mut rsl_bytes_queue) {
    crate::boundary::boundary_or((), || handle::free(queue))
}

/// Copies the `len` bytes at `data` into the queue as one message (`data`
/// may be NULL when `len` is 0). Lock-free; never blocks or allocates.
///
/// Thread-safety: thread-safe.
/// Returns RSL_ERR_FULL (nothing added) when the queue is full,
/// RSL_ERR_TOO_LARGE when `len` exceeds the queue's max_len,
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_push(
    queue: *const rsl_bytes_queue,
    data: *const u8,
    len: usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        let msg = handle::bytes(data, len, "data")?;
        q.push(msg).map_err(push_error)
    })
}

/// Pops the oldest message into `buf` (capacity `buf_len`) and writes its
/// length to `len_out`. A buffer of the queue's max_len always fits.
///
/// Thread-safety: thread-safe.
/// Returns RSL_ERR_EMPTY (nothing written) when the queue is empty;
/// RSL_ERR_BUFFER_TOO_SMALL when the oldest message is longer than
/// `buf_len`: then its length is written to `len_out` and nothing is
/// consumed; RSL_ERR_NULL_ARG (`queue` or `len_out` NULL, or `buf` NULL with
/// `buf_len` > 0), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_pop(
    queue: *const rsl_bytes_queue,
    buf: *mut u8,
    buf_len: usize,
    len_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(len_out, "len_out")?;
        let out = handle::slice_mut(buf, buf_len, "buf")?;
        match q.pop_into(out) {
            Ok(n) => handle::write(len_out, n, "len_out"),
            Err(PopError::Empty) => Err(RSL_ERR_EMPTY),
            Err(PopError::BufferTooSmall { needed }) => {
                handle::write(len_out, needed, "len_out")?;
                Err(fail(RSL_ERR_BUFFER_TOO_SMALL, format!("buffer holds {buf_len} bytes, {needed} needed")))
            }
        }
    })
}

/// Pushes up to `count` messages in order: message `i` is the next
/// `lens[i]` bytes of the packed buffer `data` (of `data_len` bytes).
/// Writes how many were pushed to `pushed_out`; fewer than `count` when
/// the queue fills up (still RSL_OK). One call for many messages, for hosts
/// whose per-call cost dominates.
///
/// Thread-safety: thread-safe; other pushes may interleave with the batch.
/// Returns RSL_ERR_INVALID_ARG (nothing pushed) if the lengths add up to
/// more than `data_len`; RSL_ERR_TOO_LARGE if a message exceeds max_len
/// (the ones before it are pushed, `pushed_out` is not written);
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_push_many(
    queue: *const rsl_bytes_queue,
    data: *const u8,
    data_len: usize,
    lens: *const usize,
    count: usize,
    pushed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(pushed_out, "pushed_out")?;
        let data = handle::bytes(data, data_len, "data")?;
        let lens = handle::slice(lens, count, "lens")?;
        let total = lens.iter().try_fold(0usize, |acc, &l| acc.checked_add(l));
        if total.is_none_or(|t| t > data_len) {
            return Err(fail(RSL_ERR_INVALID_ARG, "lens add up to more than data_len"));
        }
        let mut at = 0;
        let mut n = 0;
        for &l in lens {
            match q.push(&data[at..at + l]) {
                Ok(()) => {}
                Err(PushError::Full) => break,
                Err(e) => return Err(push_error(e)),
            }
            at += l;
            n += 1;
        }
        handle::write(pushed_out, n, "pushed_out")
    })
}

/// Pops up to `max_count` messages, packing them one after another into
/// `buf` (capacity `buf_len`) and writing message `i`'s length to
/// `lens_out[i]`; writes how many were popped to `count_out` (0 when empty;
/// that is still RSL_OK). Stops early at a message that does not fit in
/// what is left of `buf` (that message stays queued).
///
/// Thread-safety: thread-safe; other pops may interleave with the batch.
/// Returns RSL_ERR_BUFFER_TOO_SMALL (nothing consumed, `count_out` not
/// written) when the oldest message alone does not fit in `buf`;
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_pop_many(
    queue: *const rsl_bytes_queue,
    buf: *mut u8,
    buf_len: usize,
    lens_out: *mut usize,
    max_count: usize,
    count_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        handle::require_out(count_out, "count_out")?;
        let out = handle::slice_mut(buf, buf_len, "buf")?;
        let lens = handle::slice_mut(lens_out, max_count, "lens_out")?;
        let mut at = 0;
        let mut n = 0;
        while n < lens.len() {
            match q.pop_into(&mut out[at..]) {
                Ok(l) => {
                    lens[n] = l;
                    at += l;
                    n += 1;
                }
                Err(PopError::BufferTooSmall { needed }) if n == 0 => {
                    return Err(fail(
                        RSL_ERR_BUFFER_TOO_SMALL,
                        format!("buffer holds {buf_len} bytes, {needed} needed"),
                    ));
                }
                Err(_) => break,
            }
        }
        handle::write(count_out, n, "count_out")
    })
}

/// Writes the approximate number of queued messages to `len_out` and the
/// capacity to `capacity_out` (either may be NULL). Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `queue` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_len(
    queue: *const rsl_bytes_queue,
    len_out: *mut usize,
    capacity_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(queue)?;
        write_len(len_out, q.len(), capacity_out, q.capacity())
    })
}

/// The queue's max_len (longest message, in bytes), or 0 if `queue` is
/// NULL. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bytes_queue_max_len(queue: *const rsl_bytes_queue) -> usize {
    crate::boundary::boundary_or(0, || handle::borrow(queue).map(|q| q.max_len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{RSL_ERR_NULL_ARG, RSL_OK};
    use std::ptr;

    #[test]
    fn round_trip_and_errors() {
        let mut q = ptr::null_mut();
        assert_eq!(rsl_bytes_queue_new(2, 4, &mut q), RSL_OK);
        assert_eq!(rsl_bytes_queue_max_len(q), 4);
        assert_eq!(rsl_bytes_queue_push(q, b"abc".as_ptr(), 3), RSL_OK);
        assert_eq!(rsl_bytes_queue_push(q, b"abcde".as_ptr(), 5), RSL_ERR_TOO_LARGE);
        assert_eq!(rsl_bytes_queue_push(q, ptr::null(), 0), RSL_OK);
        assert_eq!(rsl_bytes_queue_push(q, b"a".as_ptr(), 1), RSL_ERR_FULL);
        let mut buf = [0u8; 4];
        let mut len = 99;
        assert_eq!(rsl_bytes_queue_pop(q, buf.as_mut_ptr(), 2, &mut len), RSL_ERR_BUFFER_TOO_SMALL);
        assert_eq!(len, 3);
        assert_eq!(rsl_bytes_queue_pop(q, buf.as_mut_ptr(), 4, &mut len), RSL_OK);
        assert_eq!((&buf[..len], len), (&b"abc"[..], 3));
        assert_eq!(rsl_bytes_queue_pop(q, buf.as_mut_ptr(), 4, &mut len), RSL_OK);
        assert_eq!(len, 0);
        len = 7;
        assert_eq!(rsl_bytes_queue_pop(q, buf.as_mut_ptr(), 4, &mut len), RSL_ERR_EMPTY);
        assert_eq!(len, 7);
        assert_eq!(rsl_bytes_queue_pop(q, buf.as_mut_ptr(), 4, ptr::null_mut()), RSL_ERR_NULL_ARG);
        rsl_bytes_queue_free(q);
        rsl_bytes_queue_free(ptr::null_mut());
        assert_eq!(rsl_bytes_queue_new(0, 4, &mut q), RSL_ERR_INVALID_ARG);
    }

    #[test]
    fn batches() {
        let mut q = ptr::null_mut();
        assert_eq!(rsl_bytes_queue_new(4, 8, &mut q), RSL_OK);
        let data = b"onetwothree";
        let lens = [3usize, 3, 5];
        let mut n = 0;
        assert_eq!(rsl_bytes_queue_push_many(q, data.as_ptr(), 11, lens.as_ptr(), 3, &mut n), RSL_OK);
        assert_eq!(n, 3);
        assert_eq!(
            rsl_bytes_queue_push_many(q, data.as_ptr(), 5, lens.as_ptr(), 3, &mut n),
            RSL_ERR_INVALID_ARG
        );
        let mut buf = [0u8; 8];
        let mut out = [0usize; 4];
        assert_eq!(rsl_bytes_queue_pop_many(q, buf.as_mut_ptr(), 8, out.as_mut_ptr(), 4, &mut n), RSL_OK);
        assert_eq!((n, &out[..2], &buf[..6]), (2, &[3usize, 3][..], &b"onetwo"[..]));
        assert_eq!(
            rsl_bytes_queue_pop_many(q, buf.as_mut_ptr(), 2, out.as_mut_ptr(), 4, &mut n),
            RSL_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(rsl_bytes_queue_pop_many(q, buf.as_mut_ptr(), 8, out.as_mut_ptr(), 4, &mut n), RSL_OK);
        assert_eq!((n, &buf[..5]), (1, &b"three"[..]));
        let (mut len, mut cap) = (9, 0);
        assert_eq!(rsl_bytes_queue_len(q, &mut len, &mut cap), RSL_OK);
        assert_eq!((len, cap), (0, 4));
        rsl_bytes_queue_free(q);
    }
}
