//! `rsl_cache`: a concurrent, bounded cache of byte keys to byte values with
//! S3-FIFO eviction and per-entry TTL.
//!
//! Keys and values are copied in on insert and copied out into the caller's
//! buffer on get (under the shard lock, so a value is never torn). An entry
//! weighs `key_len + value_len` bytes against `max_weight`.

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, Plain};
use crate::status::{
    rsl_status, RSL_ERR_BUFFER_TOO_SMALL, RSL_ERR_INVALID_ARG, RSL_ERR_NOT_FOUND, RSL_ERR_TOO_LARGE, RSL_OK,
};
use resilience::cache::{ttl, Cache};
use resilience::clock::Nanos;
use resilience::key::{copy_bytes, ByteKey, ByteStr};
use std::time::Duration;

/// `ttl_ns` value for "the cache's default TTL" (none if it has none).
pub const RSL_CACHE_TTL_DEFAULT: u64 = 0;
/// `ttl_ns` value for "never expires", whatever the default.
pub const RSL_CACHE_TTL_NEVER: u64 = u64::MAX;

/// A cache's settings. Start from `rsl_cache_config_default()`; the
/// `_reserved` tail must stay zero (nonzero is refused with
/// RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_cache_config {
    /// Most entries held at once; 0: no count limit. Default 0.
    pub max_entries: u64,
    /// Most bytes (key_len + value_len summed) held at once; 0: no weight
    /// limit. At least one of the two limits must be set. Both are totals,
    /// divided among the shards in shares that differ by at most one, so
    /// one entry may weigh at most max_weight / shards (rounded down).
    /// Default 64 MiB.
    pub max_weight: u64,
    /// Time to live of entries inserted with RSL_CACHE_TTL_DEFAULT; 0: they
    /// never expire. Default 0.
    pub default_ttl_ns: u64,
    /// Number of shards, a power of two up to 65536; 0: four per CPU (fewer
    /// for small caches). Default 0.
    pub shards: u64,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 8],
}

// SAFETY: repr(C), integer fields only.
unsafe impl Plain for rsl_cache_config {}

/// Counters and occupancy of a cache.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_cache_stats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
    /// New entries stored.
    pub inserts: u64,
    /// Inserts that replaced the value of a present key.
    pub updates: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries removed because their deadline passed.
    pub expirations: u64,
    /// Inserts refused (heavier than a shard's weight budget).
    pub rejections: u64,
    /// Entries held now (expired ones not yet removed included).
    pub entries: u64,
    /// Bytes held now.
    pub weight: u64,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 7],
}

type ByteCache = Cache<ByteKey, Box<[u8]>>;

/// The cache and the TTL that RSL_CACHE_TTL_DEFAULT stands for.
pub struct CacheHandle {
    cache: ByteCache,
    default_ttl: Option<Nanos>,
    /// The heaviest entry every shard accepts (max_weight / shards, rounded
    /// down; u64::MAX without a weight limit).
    max_entry_weight: u64,
}

/// A cache of byte keys to byte values; every function on it is
/// thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_cache {
    _private: [u8; 0],
}
opaque!(rsl_cache => CacheHandle);

#[allow(clippy::borrowed_box)] // the weigher's signature is fixed: fn(&K, &V)
fn weigh(k: &ByteKey, v: &Box<[u8]>) -> u64 {
    (k.len() + v.len()) as u64
}

impl CacheHandle {
    fn new(c: &rsl_cache_config) -> Result<Self> {
        if c._reserved.iter().any(|&r| r != 0) {
            return Err(fail(RSL_ERR_INVALID_ARG, "rsl_cache_config: reserved fields must be zero"));
        }
        let mut b = ByteCache::builder().weigher(weigh);
        if c.max_entries != 0 {
            let n = usize::try_from(c.max_entries)
                .map_err(|_| fail(RSL_ERR_INVALID_ARG, "rsl_cache_config: max_entries is too large"))?;
            b = b.max_entries(n);
        }
        if c.max_weight != 0 {
            b = b.max_weight(c.max_weight);
        }
        if c.default_ttl_ns != 0 {
            b = b.default_ttl(Duration::from_nanos(c.default_ttl_ns));
        }
        if c.shards != 0 {
            // Out-of-range values become 0, which the builder refuses.
            b = b.shards(usize::try_from(c.shards).unwrap_or(0));
        }
        let cache = b.build().map_err(|e| fail(RSL_ERR_INVALID_ARG, format!("rsl_cache_config: {e}")))?;
        let default_ttl = (c.default_ttl_ns != 0).then_some(c.default_ttl_ns);
        let max_entry_weight = match c.max_weight {
            0 => u64::MAX,
            w => w / cache.shard_count() as u64,
        };
        Ok(Self { cache, default_ttl, max_entry_weight })
    }

    fn ttl(&self, ttl_ns: u64) -> Option<Nanos> {
        match ttl_ns {
            RSL_CACHE_TTL_DEFAULT => self.default_ttl,
            RSL_CACHE_TTL_NEVER => None,
            t => Some(t),
        }
    }
}

/// Returns the default settings: a 64 MiB weight budget, no count limit, no
/// default TTL, automatic shard count; reserved fields zero. Thread-safe.
/// Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_config_default() -> rsl_cache_config {
    rsl_cache_config { max_entries: 0, max_weight: 64 << 20, default_ttl_ns: 0, shards: 0, _reserved: [0; 8] }
}

/// Creates a cache with `config` (NULL: the defaults). Memory grows with
/// the entries, up to the limits.
///
/// Ownership: the caller owns `*cache_out` and frees it with rsl_cache_free.
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `cache_out` is NULL,
/// RSL_ERR_INVALID_ARG for bad settings (no limit, a shard count that is not
/// a power of two up to 65536, more shards than entries, too many entries
/// per shard, a nonzero reserved field; rsl_last_error says which),
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_new(
    config: *const rsl_cache_config,
    cache_out: *mut *mut rsl_cache,
) -> rsl_status {
    boundary(|| {
        handle::require_out(cache_out, "cache_out")?;
        let config = handle::read_plain(config, "config")?.unwrap_or_else(|| rsl_cache_config_default());
        let c = CacheHandle::new(&config)?;
        handle::write(cache_out, handle::into_raw(c), "cache_out")
    })
}

/// Frees the cache and every entry. NULL is a no-op. No other call on the
/// cache may run concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_free(cache: *mut rsl_cache) {
    boundary_or((), || handle::free(cache))
}

/// Looks `key` up and copies its value into `dst`: `Ok(len)`, `Err(None)`
/// when absent, `Err(Some(needed))` when `dst` is too small.
#[inline(always)]
fn lookup(
    c: &CacheHandle,
    key: &[u8],
    now: Option<u64>,
    dst: &mut [u8],
) -> std::result::Result<usize, Option<usize>> {
    #[allow(clippy::borrowed_box)]
    let copy = |v: &Box<[u8]>| match dst.get_mut(..v.len()) {
        Some(d) => {
            copy_bytes(d, v);
            Ok(v.len())
        }
        None => Err(Some(v.len())),
    };
    let r = match now {
        None => c.cache.get_with(ByteStr::new(key), copy),
        Some(t) => c.cache.get_with_at(ByteStr::new(key), t, copy),
    };
    r.unwrap_or(Err(None))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn get(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    now: Option<u64>,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> Result {
    let c = handle::borrow(cache)?;
    handle::require_out(len_out, "len_out")?;
    let key = handle::bytes(key, key_len, "key")?;
    let dst = handle::slice_mut(buf, cap, "buf")?;
    match lookup(c, key, now, dst) {
        Ok(n) => handle::write(len_out, n, "len_out"),
        Err(None) => Err(RSL_ERR_NOT_FOUND),
        Err(Some(needed)) => {
            handle::write(len_out, needed, "len_out")?;
            Err(handle::buffer_too_small(cap, needed))
        }
    }
}

/// Copies the value of `key` (`key_len` bytes; NULL allowed when 0) into
/// `buf` (capacity `cap`; NULL allowed when 0) and writes its length to
/// `*len_out`. Counts as a hit or a miss; a hit marks the entry as used.
///
/// Thread-safe. Returns RSL_ERR_NOT_FOUND (absent or expired; `rsl_last_error`
/// is not set, a miss is an answer), RSL_ERR_BUFFER_TOO_SMALL (nothing copied;
/// the needed size is written to `*len_out`), RSL_ERR_NULL_ARG (`cache` or
/// `len_out` NULL, or a NULL pointer with a nonzero length),
/// RSL_ERR_TOO_LARGE (a length above 1 GiB), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_get(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> rsl_status {
    boundary(|| get(cache, key, key_len, None, buf, cap, len_out))
}

/// rsl_cache_get at time `now_ns` (CLOCK_MONOTONIC ns) for the TTL check.
/// Thread-safe. Returns as rsl_cache_get.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_get_at(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    now_ns: u64,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> rsl_status {
    boundary(|| get(cache, key, key_len, Some(now_ns), buf, cap, len_out))
}

#[allow(clippy::too_many_arguments)]
fn get_many(
    cache: *const rsl_cache,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    now: Option<u64>,
    buf: *mut u8,
    cap: usize,
    value_offsets_out: *mut usize,
    value_lens_out: *mut usize,
    statuses_out: *mut i32,
) -> Result {
    let c = handle::borrow(cache)?;
    let keys = handle::slice(keys, count, "keys")?;
    let key_lens = handle::slice(key_lens, count, "key_lens")?;
    let offsets = handle::slice_mut(value_offsets_out, count, "value_offsets_out")?;
    let lens = handle::slice_mut(value_lens_out, count, "value_lens_out")?;
    let statuses = handle::slice_mut(statuses_out, count, "statuses_out")?;
    let dst = handle::slice_mut(buf, cap, "buf")?;
    // Keys go to the core in blocks (one clock read per block); a bad key
    // gets its status here and the others are looked up in key order.
    const BLOCK: usize = 64;
    let mut views: [&ByteStr; BLOCK] = [ByteStr::new(&[]); BLOCK];
    let mut at = [0usize; BLOCK];
    let mut used = 0;
    for start in (0..count).step_by(BLOCK) {
        let end = count.min(start + BLOCK);
        let mut n = 0;
        for i in start..end {
            match handle::bytes(keys[i], key_lens[i], "key") {
                Err(s) => {
                    offsets[i] = 0;
                    lens[i] = 0;
                    statuses[i] = s as i32;
                }
                Ok(key) => {
                    views[n] = ByteStr::new(key);
                    at[n] = i;
                    n += 1;
                }
            }
        }
        c.cache.get_many_with(&views[..n], now, |j, v: Option<&Box<[u8]>>| {
            let i = at[j];
            let (status, off, len) = match v {
                None => (RSL_ERR_NOT_FOUND, 0, 0),
                Some(v) => match dst.get_mut(used..used + v.len()) {
                    Some(d) => {
                        copy_bytes(d, v);
                        used += v.len();
                        (RSL_OK, used - v.len(), v.len())
                    }
                    None => (RSL_ERR_BUFFER_TOO_SMALL, 0, v.len()),
                },
            };
            offsets[i] = off;
            lens[i] = len;
            statuses[i] = status as i32;
        });
    }
    Ok(())
}

/// Looks up `count` keys at once (one call instead of `count`, for hosts
/// whose per-call cost dominates). Key `i` is the `key_lens[i]` bytes at
/// `keys[i]`. The values found are packed one after another into `buf`
/// (capacity `cap`) in key order; for each key `i`:
///  - `statuses_out[i]` = RSL_OK: the value is at `buf + value_offsets_out[i]`,
///    `value_lens_out[i]` bytes;
///  - RSL_ERR_NOT_FOUND: absent or expired (offset and length 0);
///  - RSL_ERR_BUFFER_TOO_SMALL: the value did not fit in the space left;
///    `value_lens_out[i]` is its size (nothing copied; later, smaller values
///    may still fit; fetch this one with rsl_cache_get);
///  - RSL_ERR_NULL_ARG / RSL_ERR_TOO_LARGE: that key's pointer or length is
///    bad (the other keys are still looked up).
///
/// The three output arrays hold `count` elements each (`size_t`, `size_t`,
/// `int32_t`). The keys are looked up one by one, not as one snapshot.
///
/// Thread-safe. Returns RSL_OK when every key got a status (whatever the
/// statuses); RSL_ERR_NULL_ARG if `cache` or an array is NULL with a nonzero
/// count (or `buf` with a nonzero `cap`), RSL_ERR_TOO_LARGE (`count` or
/// `cap` absurd), RSL_ERR_INVALID_ARG (a misaligned array), RSL_ERR_PANIC;
/// outputs are not written then.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_get_many(
    cache: *const rsl_cache,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    buf: *mut u8,
    cap: usize,
    value_offsets_out: *mut usize,
    value_lens_out: *mut usize,
    statuses_out: *mut i32,
) -> rsl_status {
    boundary(|| {
        get_many(
            cache,
            keys,
            key_lens,
            count,
            None,
            buf,
            cap,
            value_offsets_out,
            value_lens_out,
            statuses_out,
        )
    })
}

/// rsl_cache_get_many at time `now_ns`. Thread-safe. Returns as
/// rsl_cache_get_many.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_get_many_at(
    cache: *const rsl_cache,
    keys: *const *const u8,
    key_lens: *const usize,
    count: usize,
    now_ns: u64,
    buf: *mut u8,
    cap: usize,
    value_offsets_out: *mut usize,
    value_lens_out: *mut usize,
    statuses_out: *mut i32,
) -> rsl_status {
    boundary(|| {
        get_many(
            cache,
            keys,
            key_lens,
            count,
            Some(now_ns),
            buf,
            cap,
            value_offsets_out,
            value_lens_out,
            statuses_out,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn insert(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ns: u64,
    now: Option<u64>,
) -> Result {
    let c = handle::borrow(cache)?;
    let key = handle::bytes(key, key_len, "key")?;
    let value = handle::bytes(value, value_len, "value")?;
    let ttl = c.ttl(ttl_ns);
    let weight = (key.len() + value.len()) as u64;
    if let (Some(t), Some(now)) = (ttl, now) {
        if ttl::is_expired(ttl::deadline(now, Some(t)), now) && weight <= c.max_entry_weight {
            // Past its deadline already at `now_ns` (the end of the clock):
            // kept no more than a value that expired at once would be. (Too
            // heavy as well, it is TOO_LARGE below, as without a TTL.)
            drop(c.cache.remove(ByteStr::new(key)));
            return Ok(());
        }
    }
    let stored = match now {
        None => c.cache.try_insert(key.into(), value.into(), ttl),
        Some(t) => c.cache.try_insert_at(key.into(), value.into(), ttl, t),
    };
    if !stored {
        return Err(fail(
            RSL_ERR_TOO_LARGE,
            format!(
                "entry of {} bytes exceeds the shard's weight budget (max_weight / shards)",
                key.len() + value.len()
            ),
        ));
    }
    Ok(())
}

/// Stores a copy of `key -> value` (replacing any value of the key) with a
/// time to live of `ttl_ns` nanoseconds (RSL_CACHE_TTL_DEFAULT: the cache's
/// default; RSL_CACHE_TTL_NEVER: never expires). May evict other entries to
/// stay within the limits. Keys may be empty; NULL is allowed with length 0.
///
/// Thread-safe. Returns RSL_ERR_TOO_LARGE when the entry weighs more than a
/// shard's weight budget (max_weight / shards; any previous value of the
/// key is removed too, so it is never read stale) or a length is above
/// 1 GiB, RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_insert(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ns: u64,
) -> rsl_status {
    boundary(|| insert(cache, key, key_len, value, value_len, ttl_ns, None))
}

/// rsl_cache_insert at time `now_ns` (the entry expires at now_ns + ttl).
/// An entry whose deadline has passed already at `now_ns` (now_ns of
/// UINT64_MAX) is not kept, and any previous value of the key is removed:
/// RSL_OK, as for a value that expired at once. Thread-safe. Returns as
/// rsl_cache_insert.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_insert_at(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ns: u64,
    now_ns: u64,
) -> rsl_status {
    boundary(|| insert(cache, key, key_len, value, value_len, ttl_ns, Some(now_ns)))
}

/// Removes `key` (expired or not). Thread-safe.
/// Returns RSL_ERR_NOT_FOUND if it was absent (an answer: `rsl_last_error`
/// is not set), RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_remove(cache: *const rsl_cache, key: *const u8, key_len: usize) -> rsl_status {
    boundary(|| {
        let c = handle::borrow(cache)?;
        let key = handle::bytes(key, key_len, "key")?;
        match c.cache.remove(ByteStr::new(key)) {
            Some(v) => {
                drop(v);
                Ok(())
            }
            None => Err(RSL_ERR_NOT_FOUND),
        }
    })
}

/// Writes to `*present_out` whether `key` has a live entry (not counted as a
/// hit or a miss; does not mark the entry as used). Thread-safe.
/// Returns RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_contains(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    present_out: *mut bool,
) -> rsl_status {
    boundary(|| {
        let c = handle::borrow(cache)?;
        handle::require_out(present_out, "present_out")?;
        let key = handle::bytes(key, key_len, "key")?;
        handle::write(present_out, c.cache.contains(ByteStr::new(key)), "present_out")
    })
}

/// rsl_cache_contains at time `now_ns`. Thread-safe. Returns as
/// rsl_cache_contains.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_contains_at(
    cache: *const rsl_cache,
    key: *const u8,
    key_len: usize,
    now_ns: u64,
    present_out: *mut bool,
) -> rsl_status {
    boundary(|| {
        let c = handle::borrow(cache)?;
        handle::require_out(present_out, "present_out")?;
        let key = handle::bytes(key, key_len, "key")?;
        handle::write(present_out, c.cache.contains_at(ByteStr::new(key), now_ns), "present_out")
    })
}

/// Writes the number of entries (expired ones not yet removed included) to
/// `*len_out` and the bytes held to `*weight_out` (either may be NULL).
/// Thread-safe (shard by shard, not one snapshot).
/// Returns RSL_ERR_NULL_ARG if `cache` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_len(
    cache: *const rsl_cache,
    len_out: *mut usize,
    weight_out: *mut u64,
) -> rsl_status {
    boundary(|| {
        let c = handle::borrow(cache)?;
        if !len_out.is_null() {
            handle::write(len_out, c.cache.len(), "len_out")?;
        }
        if !weight_out.is_null() {
            handle::write(weight_out, c.cache.weight(), "weight_out")?;
        }
        Ok(())
    })
}

/// Removes every entry (the counters are kept). Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `cache` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_clear(cache: *const rsl_cache) -> rsl_status {
    boundary(|| {
        handle::borrow(cache)?.cache.clear();
        Ok(())
    })
}

/// Writes the counters summed over the shards, and the entries and bytes
/// held, to `*stats_out`. Thread-safe.
/// Returns RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_get_stats(
    cache: *const rsl_cache,
    stats_out: *mut rsl_cache_stats,
) -> rsl_status {
    boundary(|| {
        let c = handle::borrow(cache)?;
        handle::require_out(stats_out, "stats_out")?;
        let s = c.cache.stats();
        let stats = rsl_cache_stats {
            hits: s.hits,
            misses: s.misses,
            inserts: s.inserts,
            updates: s.updates,
            evictions: s.evictions,
            expirations: s.expirations,
            rejections: s.rejections,
            entries: c.cache.len() as u64,
            weight: c.cache.weight(),
            _reserved: [0; 7],
        };
        handle::write(stats_out, stats, "stats_out")
    })
}

/// Removes up to `max` expired entries, resuming where the last sweep
/// stopped, and writes how many to `*removed_out` (if not NULL). Nothing
/// sweeps by itself: call it from a timer or an idle loop. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `cache` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_sweep(
    cache: *const rsl_cache,
    max: usize,
    removed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let n = handle::borrow(cache)?.cache.sweep_expired(max);
        if !removed_out.is_null() {
            handle::write(removed_out, n, "removed_out")?;
        }
        Ok(())
    })
}

/// rsl_cache_sweep at time `now_ns`. Thread-safe. Returns as
/// rsl_cache_sweep.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_cache_sweep_at(
    cache: *const rsl_cache,
    now_ns: u64,
    max: usize,
    removed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let n = handle::borrow(cache)?.cache.sweep_expired_at(max, now_ns);
        if !removed_out.is_null() {
            handle::write(removed_out, n, "removed_out")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_and_ttl_mapping() {
        let d = rsl_cache_config_default();
        assert_eq!(std::mem::size_of::<rsl_cache_config>(), 96);
        assert_eq!(std::mem::size_of::<rsl_cache_stats>(), 128);
        let c = CacheHandle::new(&rsl_cache_config { default_ttl_ns: 7, ..d }).unwrap();
        assert_eq!(c.ttl(RSL_CACHE_TTL_DEFAULT), Some(7));
        assert_eq!(c.ttl(RSL_CACHE_TTL_NEVER), None);
        assert_eq!(c.ttl(5), Some(5));
        let bad = rsl_cache_config { _reserved: [0, 0, 0, 1, 0, 0, 0, 0], ..d };
        assert_eq!(CacheHandle::new(&bad).err(), Some(RSL_ERR_INVALID_ARG));
        let unbounded = rsl_cache_config { max_weight: 0, ..d };
        assert_eq!(CacheHandle::new(&unbounded).err(), Some(RSL_ERR_INVALID_ARG));
        let shards = rsl_cache_config { shards: 3, ..d };
        assert_eq!(CacheHandle::new(&shards).err(), Some(RSL_ERR_INVALID_ARG));
        let huge = rsl_cache_config { shards: u64::MAX, ..d };
        assert_eq!(CacheHandle::new(&huge).err(), Some(RSL_ERR_INVALID_ARG));
    }
}
