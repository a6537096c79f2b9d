//! `rsl_idem`: an idempotency-key store (begin / complete / abandon records
//! with leases, responses replayed to retries).
//!
//! A server calls `rsl_idem_begin` with the request's idempotency key and a
//! fingerprint of the request. RSL_IDEM_STARTED (or _TAKEOVER): do the work,
//! then `rsl_idem_complete` with the response (or `rsl_idem_abandon` if it
//! failed in a retryable way). RSL_IDEM_COMPLETED: replay the response copied
//! into the caller's buffer. RSL_IDEM_IN_PROGRESS: answer "try again after
//! retry_after". RSL_ERR_MISMATCH: the key was used for another request.

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, Plain, RSL_MAX_BYTES};
use crate::status::{
    rsl_status, RSL_ERR_BUFFER_TOO_SMALL, RSL_ERR_FULL, RSL_ERR_INTERNAL, RSL_ERR_INVALID_ARG,
    RSL_ERR_MISMATCH, RSL_ERR_NOT_FOUND, RSL_ERR_NOT_OWNER, RSL_ERR_TOO_LARGE,
};
use resilience::idempotency::{Begin, Config, Error, Stats, Store};

/// Begin answer: the caller owns the new record (token in `*token_out`).
pub const RSL_IDEM_STARTED: i32 = 0;
/// Begin answer: another caller owns the record; retry after
/// `*retry_after_ns_out` nanoseconds (the time left on its lease, >= 1).
pub const RSL_IDEM_IN_PROGRESS: i32 = 1;
/// Begin answer: the request was already done; its response was copied into
/// the caller's buffer (`*response_len_out` bytes).
pub const RSL_IDEM_COMPLETED: i32 = 2;
/// Begin answer: like RSL_IDEM_STARTED, but a stale in-progress record (its
/// owner's lease ran out) was replaced: the earlier attempt may have done
/// part of the work.
pub const RSL_IDEM_STARTED_TAKEOVER: i32 = 3;

/// An idempotency store's settings. Start from `rsl_idem_config_default()`;
/// the `_reserved` tail must stay zero (nonzero is refused with
/// RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_idem_config {
    /// Byte budget for all records (each costs 2 * key + fingerprint +
    /// response + 192 bytes); default 64 MiB. `max_bytes / shards` must hold
    /// one record of maximum size.
    pub max_bytes: u64,
    /// How long a completed response is replayed, > 0; default 24 h.
    pub retention_ns: u64,
    /// Number of shards, a power of two in 1..=4096; default 16.
    pub shards: u64,
    /// Longest key, 1..=1 GiB bytes; default 255.
    pub max_key_len: u64,
    /// Longest fingerprint, at most 1 GiB bytes; default 64.
    pub max_fingerprint_len: u64,
    /// Longest response, at most 1 GiB bytes; default 1 MiB.
    pub max_response_len: u64,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 8],
}

// SAFETY: repr(C), integer fields only.
unsafe impl Plain for rsl_idem_config {}

fn usize_field(v: u64, name: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| fail(RSL_ERR_INVALID_ARG, format!("rsl_idem_config: {name} is too large")))
}

impl rsl_idem_config {
    fn from_core(c: &Config) -> Self {
        Self {
            max_bytes: c.max_bytes as u64,
            retention_ns: c.retention,
            shards: c.shards as u64,
            max_key_len: c.max_key_len as u64,
            max_fingerprint_len: c.max_fingerprint_len as u64,
            max_response_len: c.max_response_len as u64,
            _reserved: [0; 8],
        }
    }

    fn to_core(self) -> Result<Config> {
        if self._reserved.iter().any(|&r| r != 0) {
            return Err(fail(RSL_ERR_INVALID_ARG, "rsl_idem_config: reserved fields must be zero"));
        }
        // Every key, fingerprint and response must fit through the ABI.
        let limit = RSL_MAX_BYTES as u64;
        if self.max_key_len > limit || self.max_fingerprint_len > limit || self.max_response_len > limit {
            return Err(fail(RSL_ERR_INVALID_ARG, "rsl_idem_config: a length limit exceeds 1 GiB"));
        }
        Ok(Config {
            shards: usize_field(self.shards, "shards")?,
            max_bytes: usize_field(self.max_bytes, "max_bytes")?,
            retention: self.retention_ns,
            max_key_len: usize_field(self.max_key_len, "max_key_len")?,
            max_fingerprint_len: usize_field(self.max_fingerprint_len, "max_fingerprint_len")?,
            max_response_len: usize_field(self.max_response_len, "max_response_len")?,
        })
    }
}

/// Counters and occupancy of a store.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_idem_stats {
    /// Begins that started a record (takeovers included).
    pub started: u64,
    /// Started records that replaced a stale in-progress record.
    pub takeovers: u64,
    /// Begins answered with a stored response.
    pub replays: u64,
    /// Begins answered "in progress".
    pub in_progress: u64,
    /// Begins answered "mismatch".
    pub mismatches: u64,
    /// Begins refused with RSL_ERR_FULL.
    pub full: u64,
    /// Successful completes.
    pub completed: u64,
    /// Completes refused with RSL_ERR_FULL.
    pub complete_full: u64,
    /// Successful abandons.
    pub abandoned: u64,
    /// Records removed before their deadline to make room.
    pub evicted: u64,
    /// Records removed after their deadline.
    pub expired: u64,
    /// Records held now.
    pub records: u64,
    /// Of which in progress.
    pub in_progress_records: u64,
    /// Bytes charged to the budget now.
    pub bytes_used: u64,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 8],
}

impl From<Stats> for rsl_idem_stats {
    fn from(s: Stats) -> Self {
        Self {
            started: s.started,
            takeovers: s.takeovers,
            replays: s.replays,
            in_progress: s.in_progress,
            mismatches: s.mismatches,
            full: s.full,
            completed: s.completed,
            complete_full: s.complete_full,
            abandoned: s.abandoned,
            evicted: s.evicted,
            expired: s.expired,
            records: s.records,
            in_progress_records: s.in_progress_records,
            bytes_used: s.bytes_used,
            _reserved: [0; 8],
        }
    }
}

/// The store and the retention used when a caller passes 0.
#[derive(Debug)]
pub struct IdemStore {
    store: Store,
    retention: u64,
}

/// An idempotency store; every function on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_idem {
    _private: [u8; 0],
}
opaque!(rsl_idem => IdemStore);

/// Maps a core error to its status, with the error's text as last error.
fn status_of(e: Error) -> rsl_status {
    let s = match e {
        Error::EmptyKey | Error::ZeroLease | Error::ZeroRetention | Error::InvalidConfig(_) => {
            RSL_ERR_INVALID_ARG
        }
        Error::KeyTooLong { .. } | Error::FingerprintTooLong { .. } | Error::ResponseTooLong { .. } => {
            RSL_ERR_TOO_LARGE
        }
        Error::Full => RSL_ERR_FULL,
        Error::NotFound => RSL_ERR_NOT_FOUND,
        Error::NotOwner | Error::AlreadyCompleted => RSL_ERR_NOT_OWNER,
        _ => RSL_ERR_INTERNAL,
    };
    fail(s, e.to_string())
}

/// Returns the default settings: 16 shards, 64 MiB, 24 h retention, keys up
/// to 255 bytes, fingerprints up to 64, responses up to 1 MiB; reserved
/// fields zero. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_config_default() -> rsl_idem_config {
    rsl_idem_config::from_core(&Config::default())
}

/// Creates a store with `config` (NULL: the defaults).
///
/// Ownership: the caller owns `*store_out` and frees it with rsl_idem_free.
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `store_out` is NULL,
/// RSL_ERR_INVALID_ARG for an inconsistent config (rsl_last_error says
/// which), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_new(config: *const rsl_idem_config, store_out: *mut *mut rsl_idem) -> rsl_status {
    boundary(|| {
        handle::require_out(store_out, "store_out")?;
        let config = match handle::read_plain(config, "config")? {
            Some(c) => c.to_core()?,
            None => Config::default(),
        };
        let retention = config.retention;
        let store = Store::new(config).map_err(|e| fail(RSL_ERR_INVALID_ARG, e.to_string()))?;
        handle::write(store_out, handle::into_raw(IdemStore { store, retention }), "store_out")
    })
}

/// Frees the store and every record in it. NULL is a no-op. No other call
/// on the store may run concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_free(store: *mut rsl_idem) {
    boundary_or((), || handle::free(store))
}

#[allow(clippy::too_many_arguments)]
fn begin(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    fingerprint: *const u8,
    fingerprint_len: usize,
    lease_ns: u64,
    now: Option<u64>,
    state_out: *mut i32,
    token_out: *mut u64,
    retry_after_ns_out: *mut u64,
    response_buf: *mut u8,
    response_cap: usize,
    response_len_out: *mut usize,
) -> Result {
    let s = handle::borrow(store)?;
    // Every output is checked before the store changes, so a started record
    // is never lost for want of a place to report it.
    handle::require_out(state_out, "state_out")?;
    handle::require_out(token_out, "token_out")?;
    handle::require_out(response_len_out, "response_len_out")?;
    let key = handle::bytes(key, key_len, "key")?;
    let fingerprint = handle::bytes(fingerprint, fingerprint_len, "fingerprint")?;
    let buf = handle::slice_mut(response_buf, response_cap, "response_buf")?;
    let answer = match now {
        None => s.store.begin(key, fingerprint, lease_ns),
        Some(t) => s.store.begin_at(key, fingerprint, lease_ns, t),
    }
    .map_err(status_of)?;
    let (state, token, retry_after) = match answer {
        Begin::Started { token, takeover: false } => (RSL_IDEM_STARTED, token, 0),
        Begin::Started { token, takeover: true } => (RSL_IDEM_STARTED_TAKEOVER, token, 0),
        Begin::InProgress { retry_after } => (RSL_IDEM_IN_PROGRESS, 0, retry_after),
        Begin::Completed { .. } => (RSL_IDEM_COMPLETED, 0, 0),
        Begin::Mismatch => {
            return Err(fail(RSL_ERR_MISMATCH, "idempotency key reused with a different fingerprint"))
        }
    };
    let len = match answer.write_response(buf) {
        Ok(n) => n,
        Err(needed) => {
            handle::write(response_len_out, needed, "response_len_out")?;
            return Err(fail(
                RSL_ERR_BUFFER_TOO_SMALL,
                format!("response buffer holds {response_cap} bytes, {needed} needed"),
            ));
        }
    };
    handle::write(state_out, state, "state_out")?;
    handle::write(token_out, token, "token_out")?;
    if !retry_after_ns_out.is_null() {
        handle::write(retry_after_ns_out, retry_after, "retry_after_ns_out")?;
    }
    handle::write(response_len_out, len, "response_len_out")
}

/// Claims `key` for the request fingerprinted by `fingerprint` with a lease
/// of `lease_ns` from now, or answers from its record. Keys are 1 to
/// `max_key_len` bytes, fingerprints 0 to `max_fingerprint_len` (empty: only
/// the key matters); both compared exactly.
///
/// On RSL_OK writes `*state_out` and every other output:
///  - RSL_IDEM_STARTED / RSL_IDEM_STARTED_TAKEOVER: `*token_out` is the owner
///    token (nonzero) for rsl_idem_complete / rsl_idem_abandon;
///  - RSL_IDEM_IN_PROGRESS: `*retry_after_ns_out` is the lease time left;
///  - RSL_IDEM_COMPLETED: the stored response was copied to `response_buf`,
///    `*response_len_out` bytes;
///
/// and 0 in the outputs that do not apply. `retry_after_ns_out` may be NULL;
/// `response_buf` may be NULL when `response_cap` is 0.
///
/// Nothing is lost: the only answer that changes the store (STARTED) never
/// needs the buffer; RSL_ERR_BUFFER_TOO_SMALL (only for a completed record
/// whose response exceeds `response_cap`) writes the needed size to
/// `*response_len_out` and nothing else, and calling again with a large
/// enough buffer replays it (the stats count a replay for each call).
///
/// Thread-safe: racing begins on one key start exactly one record.
/// Returns RSL_ERR_MISMATCH (the key's record has another fingerprint; no
/// output written), RSL_ERR_FULL (in-progress records fill the budget: shed
/// load), RSL_ERR_BUFFER_TOO_SMALL, RSL_ERR_INVALID_ARG (empty key, zero
/// lease), RSL_ERR_TOO_LARGE (key or fingerprint above its limit, or a length
/// above 1 GiB), RSL_ERR_NULL_ARG (`store`, `state_out`, `token_out` or
/// `response_len_out` NULL, or a NULL buffer with a nonzero length),
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_begin(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    fingerprint: *const u8,
    fingerprint_len: usize,
    lease_ns: u64,
    state_out: *mut i32,
    token_out: *mut u64,
    retry_after_ns_out: *mut u64,
    response_buf: *mut u8,
    response_cap: usize,
    response_len_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        begin(
            store,
            key,
            key_len,
            fingerprint,
            fingerprint_len,
            lease_ns,
            None,
            state_out,
            token_out,
            retry_after_ns_out,
            response_buf,
            response_cap,
            response_len_out,
        )
    })
}

/// rsl_idem_begin at time `now_ns` (CLOCK_MONOTONIC ns). Thread-safe.
/// Returns as rsl_idem_begin.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_begin_at(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    fingerprint: *const u8,
    fingerprint_len: usize,
    lease_ns: u64,
    now_ns: u64,
    state_out: *mut i32,
    token_out: *mut u64,
    retry_after_ns_out: *mut u64,
    response_buf: *mut u8,
    response_cap: usize,
    response_len_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        begin(
            store,
            key,
            key_len,
            fingerprint,
            fingerprint_len,
            lease_ns,
            Some(now_ns),
            state_out,
            token_out,
            retry_after_ns_out,
            response_buf,
            response_cap,
            response_len_out,
        )
    })
}

/// Stores the `response_len` bytes at `response` (copied) for `key`, to be
/// replayed for the configured retention, if `token` owns the record. An
/// owner whose lease ran out may still complete until someone takes over.
///
/// Thread-safe. Returns RSL_ERR_NOT_FOUND (no live record: never begun,
/// abandoned, expired, evicted), RSL_ERR_NOT_OWNER (another token owns it,
/// or it is already completed; rsl_last_error says which), RSL_ERR_FULL (the
/// response does not fit the budget; the record stays in progress, retry or
/// abandon), RSL_ERR_INVALID_ARG (empty key), RSL_ERR_TOO_LARGE (key or
/// response above its limit), RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_complete(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    token: u64,
    response: *const u8,
    response_len: usize,
) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let key = handle::bytes(key, key_len, "key")?;
        let response = handle::bytes(response, response_len, "response")?;
        s.store.complete(key, token, response).map_err(status_of)
    })
}

/// rsl_idem_complete at time `now_ns`, replaying the response until
/// `now_ns + retention_ns` (`retention_ns` 0: the configured retention).
/// Thread-safe. Returns as rsl_idem_complete.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_complete_at(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    token: u64,
    response: *const u8,
    response_len: usize,
    retention_ns: u64,
    now_ns: u64,
) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let key = handle::bytes(key, key_len, "key")?;
        let response = handle::bytes(response, response_len, "response")?;
        let retention = if retention_ns == 0 { s.retention } else { retention_ns };
        s.store.complete_at(key, token, response, retention, now_ns).map_err(status_of)
    })
}

/// Releases `key` if `token` owns its in-progress record, so that a retry
/// starts afresh (the work failed in a retryable way). Thread-safe.
/// Returns RSL_ERR_NOT_FOUND, RSL_ERR_NOT_OWNER (as rsl_idem_complete),
/// RSL_ERR_INVALID_ARG (empty key), RSL_ERR_TOO_LARGE, RSL_ERR_NULL_ARG,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_abandon(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    token: u64,
) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let key = handle::bytes(key, key_len, "key")?;
        s.store.abandon(key, token).map_err(status_of)
    })
}

/// rsl_idem_abandon at time `now_ns`. Thread-safe. Returns as
/// rsl_idem_abandon.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_abandon_at(
    store: *const rsl_idem,
    key: *const u8,
    key_len: usize,
    token: u64,
    now_ns: u64,
) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let key = handle::bytes(key, key_len, "key")?;
        s.store.abandon_at(key, token, now_ns).map_err(status_of)
    })
}

/// Removes up to `max` records that are over (completed past retention; in
/// progress with a lease that ran out one retention period ago, so that a
/// late complete and a takeover still work meanwhile), resuming where the last sweep
/// stopped, and writes how many to `*removed_out` (if not NULL). Nothing
/// sweeps by itself: call it from a timer. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `store` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_sweep(store: *const rsl_idem, max: usize, removed_out: *mut usize) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let n = s.store.sweep_expired(max);
        if !removed_out.is_null() {
            handle::write(removed_out, n, "removed_out")?;
        }
        Ok(())
    })
}

/// rsl_idem_sweep at time `now_ns`. Thread-safe. Returns as rsl_idem_sweep.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_sweep_at(
    store: *const rsl_idem,
    now_ns: u64,
    max: usize,
    removed_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        let n = s.store.sweep_expired_at(now_ns, max);
        if !removed_out.is_null() {
            handle::write(removed_out, n, "removed_out")?;
        }
        Ok(())
    })
}

/// Writes the counters and occupancy, summed over the shards (each read
/// under its own lock, so not one atomic snapshot), to `*stats_out`.
/// Thread-safe. Returns RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_idem_get_stats(store: *const rsl_idem, stats_out: *mut rsl_idem_stats) -> rsl_status {
    boundary(|| {
        let s = handle::borrow(store)?;
        handle::write(stats_out, s.store.stats().into(), "stats_out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_checks_reserved() {
        let c = rsl_idem_config_default();
        assert_eq!(c.to_core().unwrap(), Config::default());
        let mut bad = c;
        bad._reserved[0] = 9;
        assert_eq!(bad.to_core().unwrap_err(), RSL_ERR_INVALID_ARG);
        let huge = rsl_idem_config { max_response_len: 1 << 31, ..c };
        assert_eq!(huge.to_core().unwrap_err(), RSL_ERR_INVALID_ARG);
        assert_eq!(std::mem::size_of::<rsl_idem_config>(), 112);
        assert_eq!(std::mem::size_of::<rsl_idem_stats>(), 176);
    }

    #[test]
    fn every_error_has_a_status() {
        assert_eq!(status_of(Error::EmptyKey), RSL_ERR_INVALID_ARG);
        assert_eq!(status_of(Error::KeyTooLong { len: 2, max: 1 }), RSL_ERR_TOO_LARGE);
        assert_eq!(status_of(Error::AlreadyCompleted), RSL_ERR_NOT_OWNER);
        assert_eq!(status_of(Error::Full), RSL_ERR_FULL);
    }
}
