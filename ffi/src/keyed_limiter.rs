//! `rsl_keyed_limiter`: a token bucket per byte key, at most `max_keys` keys
//! tracked, in a bounded sharded table (buckets that have refilled are
//! dropped without changing any answer).

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, Plain};
use crate::limiter::{check_answer, clock_arg, rsl_decision, rsl_quota, RSL_LIMITER_CLOCK_AUTO};
use crate::status::{rsl_status, RSL_ERR_INVALID_ARG};
use resilience::clock::{Clock, Nanos};
use resilience::hash::SeededState;
use resilience::key::{ByteKey, ByteStr};
use resilience::limit::{Decision, FullPolicy, KeyedLimiter};

/// Full policy: a new key arriving when the table is full of live keys is
/// denied (RSL_REASON_TABLE_FULL): no key escapes its limit.
pub const RSL_FULL_POLICY_DENY: i32 = 0;
/// Full policy: a new key arriving when the table is full of live keys is
/// allowed as if its bucket were full, and not tracked
/// (RSL_REASON_UNTRACKED).
pub const RSL_FULL_POLICY_ALLOW_UNTRACKED: i32 = 1;

/// Most shards a keyed limiter accepts.
pub const RSL_KEYED_LIMITER_MAX_SHARDS: u64 = 65536;

type ByteLimiter = KeyedLimiter<ByteKey, SeededState, resilience::limit::AutoClock>;

/// A keyed limiter's settings. Start from
/// `rsl_keyed_limiter_config_default()`; the `_reserved` tail must stay zero
/// (nonzero is refused with RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_keyed_limiter_config {
    /// The rate every key gets. Default 100 per second, holding 100.
    pub quota: rsl_quota,
    /// Most keys tracked at once, >= 1. Memory grows with the keys (at most
    /// 64 bytes per key plus the key bytes). Default 100000.
    pub max_keys: u64,
    /// Number of shards (rounded up to a power of two, at most
    /// RSL_KEYED_LIMITER_MAX_SHARDS and at most `max_keys`); 0: 16 per CPU.
    /// Default 0.
    pub shards: u64,
    /// RSL_FULL_POLICY_DENY (default) or RSL_FULL_POLICY_ALLOW_UNTRACKED.
    pub full_policy: i32,
    /// RSL_LIMITER_CLOCK_AUTO (default), _PRECISE or _COARSE.
    pub clock: i32,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 6],
}

// SAFETY: repr(C), integer fields only.
unsafe impl Plain for rsl_keyed_limiter_config {}

/// Counters of a keyed limiter.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_keyed_limiter_stats {
    /// Keys tracked now.
    pub keys: u64,
    /// The bound on tracked keys (`max_keys`).
    pub capacity: u64,
    /// Keys dropped because their bucket had refilled.
    pub reclaimed: u64,
    /// Sweeps of a shard for refilled buckets.
    pub sweeps: u64,
    /// New keys denied because the table was full (RSL_FULL_POLICY_DENY).
    pub denied_full: u64,
    /// New keys allowed untracked (RSL_FULL_POLICY_ALLOW_UNTRACKED).
    pub allowed_untracked: u64,
    /// Bytes held by the tables (not counting the keys' own bytes).
    pub memory_bytes: u64,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 5],
}

/// Token buckets by byte key; every function on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_keyed_limiter {
    _private: [u8; 0],
}
opaque!(rsl_keyed_limiter => ByteLimiter);

/// Returns the default settings: 100 tokens per second per key in a bucket
/// of 100, 100000 keys, automatic shards, RSL_FULL_POLICY_DENY,
/// RSL_LIMITER_CLOCK_AUTO, reserved fields zero. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_config_default() -> rsl_keyed_limiter_config {
    rsl_keyed_limiter_config {
        quota: rsl_quota::DEFAULT,
        max_keys: 100_000,
        shards: 0,
        full_policy: RSL_FULL_POLICY_DENY,
        clock: RSL_LIMITER_CLOCK_AUTO,
        _reserved: [0; 6],
    }
}

fn build(c: &rsl_keyed_limiter_config) -> Result<ByteLimiter> {
    if c._reserved.iter().any(|&r| r != 0) {
        return Err(fail(RSL_ERR_INVALID_ARG, "rsl_keyed_limiter_config: reserved fields must be zero"));
    }
    let quota = c.quota.to_core()?;
    let clock = clock_arg(c.clock, &quota)?;
    let policy = match c.full_policy {
        RSL_FULL_POLICY_DENY => FullPolicy::Deny,
        RSL_FULL_POLICY_ALLOW_UNTRACKED => FullPolicy::AllowUntracked,
        p => {
            return Err(fail(
                RSL_ERR_INVALID_ARG,
                format!("rsl_keyed_limiter_config: full_policy {p} is not an RSL_FULL_POLICY_* code"),
            ))
        }
    };
    let max_keys = usize::try_from(c.max_keys).unwrap_or(0);
    if max_keys == 0 || max_keys > isize::MAX as usize / 64 {
        return Err(fail(
            RSL_ERR_INVALID_ARG,
            format!("rsl_keyed_limiter_config: max_keys {} is out of range", c.max_keys),
        ));
    }
    if c.shards > RSL_KEYED_LIMITER_MAX_SHARDS {
        return Err(fail(
            RSL_ERR_INVALID_ARG,
            format!("rsl_keyed_limiter_config: shards {} exceeds {RSL_KEYED_LIMITER_MAX_SHARDS}", c.shards),
        ));
    }
    // 0: the core's default, 16 shards per CPU (at most 1024).
    let shards = match c.shards {
        0 => std::thread::available_parallelism().map_or(4, |n| n.get()).saturating_mul(16).min(1024),
        n => n as usize,
    };
    let limiter = KeyedLimiter::with_options(quota, max_keys, policy, shards, SeededState::new(), clock);
    Ok(limiter)
}

/// Creates an empty keyed limiter with `config` (NULL: the defaults).
/// Memory grows with the keys tracked, up to `max_keys`.
///
/// Ownership: the caller owns `*limiter_out` and frees it with
/// rsl_keyed_limiter_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `limiter_out` is NULL; RSL_ERR_INVALID_ARG
/// for a bad quota, `max_keys` 0 (or absurd), too many shards, an unknown
/// full policy or clock code, a nonzero reserved field or a misaligned
/// `config` (rsl_last_error says which); RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_new(
    config: *const rsl_keyed_limiter_config,
    limiter_out: *mut *mut rsl_keyed_limiter,
) -> rsl_status {
    boundary(|| {
        handle::require_out(limiter_out, "limiter_out")?;
        let c = handle::read_plain(config, "config")?.unwrap_or_else(|| rsl_keyed_limiter_config_default());
        let l = build(&c)?;
        handle::write(limiter_out, handle::into_raw(l), "limiter_out")
    })
}

/// Frees the limiter and every key. NULL is a no-op. No other call on the
/// limiter may run concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_free(limiter: *mut rsl_keyed_limiter) {
    boundary_or((), || handle::free(limiter))
}

fn acquire(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    now: Option<Nanos>,
    decision_out: *mut rsl_decision,
) -> Result {
    let l = handle::borrow(limiter)?;
    handle::require_out(decision_out, "decision_out")?;
    let key = handle::bytes(key, key_len, "key")?;
    // One call site of the core acquire, so that it is inlined here.
    let now = now.unwrap_or_else(|| l.clock().now());
    handle::write(decision_out, l.acquire_at(ByteStr::new(key), quantity, now).into(), "decision_out")
}

/// Takes `quantity` tokens now from the bucket of `key` (the `key_len`
/// bytes at `key`, any bytes; NULL allowed when `key_len` is 0) and writes
/// the decision to `*decision_out`. Same answers as rsl_limiter_acquire on
/// a bucket per key; a denial is an answer (RSL_OK, `allowed` false), and
/// so is a full table (RSL_REASON_TABLE_FULL or RSL_REASON_UNTRACKED, by
/// the full policy). The key is copied when it is first tracked.
///
/// Thread-safe. Returns RSL_OK, RSL_ERR_NULL_ARG (`limiter` or
/// `decision_out` NULL, or `key` NULL with a nonzero length),
/// RSL_ERR_TOO_LARGE (`key_len` above 1 GiB), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_acquire(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire(limiter, key, key_len, quantity, None, decision_out))
}

/// rsl_keyed_limiter_acquire at time `now_ns` (CLOCK_MONOTONIC ns).
/// Thread-safe. Returns as rsl_keyed_limiter_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_acquire_at(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    now_ns: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire(limiter, key, key_len, quantity, Some(now_ns), decision_out))
}

fn check(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    now: Option<Nanos>,
    retry_after_ns_out: *mut u64,
) -> Result {
    let l = handle::borrow(limiter)?;
    let key = handle::bytes(key, key_len, "key")?;
    let now = now.unwrap_or_else(|| l.clock().now());
    check_answer(l.check_at(ByteStr::new(key), quantity, now), retry_after_ns_out)
}

/// rsl_limiter_check on the bucket of `key` (as rsl_keyed_limiter_acquire
/// takes it): the same grants and state as rsl_keyed_limiter_acquire,
/// answering only yes or no. A full table answers by the full policy:
/// RSL_FULL_POLICY_DENY rejects (`*retry_after_ns_out` =
/// RSL_RETRY_AFTER_NONE), RSL_FULL_POLICY_ALLOW_UNTRACKED grants.
///
/// Thread-safe. Returns RSL_OK (granted), RSL_ERR_REJECTED (denied),
/// RSL_ERR_NULL_ARG (`limiter` NULL, or `key` NULL with a nonzero length),
/// RSL_ERR_TOO_LARGE (`key_len` above 1 GiB), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_check(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| check(limiter, key, key_len, quantity, None, retry_after_ns_out))
}

/// rsl_keyed_limiter_check at time `now_ns` (CLOCK_MONOTONIC ns).
/// Thread-safe. Returns as rsl_keyed_limiter_check.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_check_at(
    limiter: *const rsl_keyed_limiter,
    key: *const u8,
    key_len: usize,
    quantity: u64,
    now_ns: u64,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| check(limiter, key, key_len, quantity, Some(now_ns), retry_after_ns_out))
}

/// Keys handled per core call in a batch (stack buffers, no allocation).
const BLOCK: usize = 16;

fn acquire_many(
    limiter: *const rsl_keyed_limiter,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    quantity: u64,
    now: Option<Nanos>,
    decisions_out: *mut rsl_decision,
) -> Result {
    let l = handle::borrow(limiter)?;
    let keys = handle::slice(keys, count, "keys")?;
    let key_lens = handle::slice(key_lens, count, "key_lens")?;
    let out = handle::slice_mut(decisions_out, count, "decisions_out")?;
    // Every key is checked before any token is taken.
    for (i, (&k, &n)) in keys.iter().zip(key_lens).enumerate() {
        handle::bytes(k, n, "key").map_err(|s| fail(s, format!("keys[{i}]: {}", last_error_text())))?;
    }
    let now = now.unwrap_or_else(|| l.clock().now());
    let mut views: [&ByteStr; BLOCK] = [ByteStr::new(&[]); BLOCK];
    let mut decisions = [Decision::EMPTY; BLOCK];
    for ((keys, lens), out) in keys.chunks(BLOCK).zip(key_lens.chunks(BLOCK)).zip(out.chunks_mut(BLOCK)) {
        let n = keys.len();
        for ((v, &k), &len) in views.iter_mut().zip(keys).zip(lens) {
            *v = ByteStr::new(handle::bytes(k, len, "key")?);
        }
        l.acquire_many(&views[..n], quantity, now, &mut decisions[..n]);
        for (o, d) in out.iter_mut().zip(&decisions[..n]) {
            *o = (*d).into();
        }
    }
    Ok(())
}

fn last_error_text() -> String {
    // SAFETY: rsl_last_error returns this thread's NUL-terminated message,
    // valid until the next call on this thread; it is copied at once.
    unsafe { std::ffi::CStr::from_ptr(crate::boundary::rsl_last_error()) }.to_string_lossy().into_owned()
}

/// Takes `quantity` tokens from the bucket of each of `count` keys at once
/// (one call instead of `count`, reading the clock once): key `i` is the
/// `key_lens[i]` bytes at `keys[i]` (NULL allowed when its length is 0),
/// and its decision is written to `decisions_out[i]` (an array of `count`).
/// A key that appears twice is charged twice, in order.
///
/// Every key pointer and length is checked before any token is taken: on
/// an error nothing was acquired and no decision written.
/// Thread-safe (each key is decided atomically; the batch is not one
/// snapshot). Returns RSL_OK (whatever the decisions), RSL_ERR_NULL_ARG
/// (`limiter` NULL, an array NULL with a nonzero `count`, or a key NULL
/// with a nonzero length; rsl_last_error says which), RSL_ERR_TOO_LARGE
/// (`count` or a key length absurd), RSL_ERR_INVALID_ARG (a misaligned
/// array), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_acquire_many(
    limiter: *const rsl_keyed_limiter,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    quantity: u64,
    decisions_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire_many(limiter, keys, key_lens, count, quantity, None, decisions_out))
}

/// rsl_keyed_limiter_acquire_many at time `now_ns` for every key.
/// Thread-safe. Returns as rsl_keyed_limiter_acquire_many.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_acquire_many_at(
    limiter: *const rsl_keyed_limiter,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    quantity: u64,
    now_ns: u64,
    decisions_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire_many(limiter, keys, key_lens, count, quantity, Some(now_ns), decisions_out))
}

fn reclaim(limiter: *const rsl_keyed_limiter, now: Option<Nanos>, removed_out: *mut usize) -> Result {
    let l = handle::borrow(limiter)?;
    let now = now.unwrap_or_else(|| l.clock().now());
    let n = l.reclaim_at(now);
    if !removed_out.is_null() {
        handle::write(removed_out, n, "removed_out")?;
    }
    Ok(())
}

/// Drops every key whose bucket has refilled now (which changes no answer),
/// in every shard, and writes how many to `*removed_out` if it is not NULL.
/// A full table does this by itself; a host with idle time may call it to
/// free memory early. Takes each shard's lock in turn.
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `limiter` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_reclaim(
    limiter: *const rsl_keyed_limiter,
    removed_out: *mut usize,
) -> rsl_status {
    boundary(|| reclaim(limiter, None, removed_out))
}

/// rsl_keyed_limiter_reclaim at time `now_ns`. Thread-safe. Returns as
/// rsl_keyed_limiter_reclaim.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_reclaim_at(
    limiter: *const rsl_keyed_limiter,
    now_ns: u64,
    removed_out: *mut usize,
) -> rsl_status {
    boundary(|| reclaim(limiter, Some(now_ns), removed_out))
}

/// Writes the number of keys tracked to `*len_out`. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `limiter` or `len_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_len(
    limiter: *const rsl_keyed_limiter,
    len_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let l = handle::borrow(limiter)?;
        handle::write(len_out, l.len(), "len_out")
    })
}

/// Writes the limiter's counters to `*stats_out` (reserved fields zeroed).
/// Takes each shard's lock in turn. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `limiter` or `stats_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_keyed_limiter_get_stats(
    limiter: *const rsl_keyed_limiter,
    stats_out: *mut rsl_keyed_limiter_stats,
) -> rsl_status {
    boundary(|| {
        let l = handle::borrow(limiter)?;
        handle::require_out(stats_out, "stats_out")?;
        let s = l.stats();
        let stats = rsl_keyed_limiter_stats {
            keys: s.keys as u64,
            capacity: s.capacity as u64,
            reclaimed: s.reclaimed,
            sweeps: s.sweeps,
            denied_full: s.denied_full,
            allowed_untracked: s.allowed_untracked,
            memory_bytes: l.memory_bytes() as u64,
            _reserved: [0; 5],
        };
        handle::write(stats_out, stats, "stats_out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_are_fixed() {
        assert_eq!(std::mem::size_of::<rsl_keyed_limiter_config>(), 96);
        assert_eq!(std::mem::size_of::<rsl_keyed_limiter_stats>(), 96);
    }

    #[test]
    fn config_is_validated() {
        let c = rsl_keyed_limiter_config_default();
        assert!(build(&c).is_ok());
        for bad in [
            rsl_keyed_limiter_config { max_keys: 0, ..c },
            rsl_keyed_limiter_config { max_keys: u64::MAX, ..c },
            rsl_keyed_limiter_config { shards: RSL_KEYED_LIMITER_MAX_SHARDS + 1, ..c },
            rsl_keyed_limiter_config { full_policy: 2, ..c },
            rsl_keyed_limiter_config { full_policy: -1, ..c },
            rsl_keyed_limiter_config { clock: 9, ..c },
            rsl_keyed_limiter_config { _reserved: [0, 0, 0, 0, 0, 1], ..c },
        ] {
            assert_eq!(build(&bad).unwrap_err(), RSL_ERR_INVALID_ARG, "{bad:?}");
        }
        let l = build(&rsl_keyed_limiter_config { shards: 3, max_keys: 2, ..c }).unwrap();
        assert_eq!(l.stats().capacity, 2);
    }
}
