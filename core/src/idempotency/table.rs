//! The single-owner idempotency table: one partition of the keyed records,
//! driven through `&mut self` with an explicit `now`. [`super::Store`] puts
//! one behind each shard's mutex; the engine will give each CPU its own
//! tables with no lock at all.

use super::{record_cost, Begin, Config, Error, Limits, Stats, Token};
use crate::clock::Nanos;
use crate::hash::SeededState;
use crate::sync::Arc;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Where a record stands.
#[derive(Debug)]
enum State {
    /// Claimed by the holder of `token` until `lease_until` (exclusive).
    InProgress { token: Token, lease_until: Nanos },
    /// Finished; `response` is replayed until `expires_at` (exclusive).
    Completed { response: Arc<[u8]>, expires_at: Nanos },
}

/// One idempotency key's record.
#[derive(Debug)]
struct Record {
    fingerprint: Box<[u8]>,
    /// Bytes charged to the budget ([`record_cost`]).
    cost: usize,
    /// Tie-breaker of this record's entry in its deadline index; unique per
    /// table, renewed at every state change.
    seq: u64,
    state: State,
}

impl Record {
    /// The index entry of this record: `(deadline, seq)`.
    fn slot(&self) -> (Nanos, u64) {
        match self.state {
            State::InProgress { lease_until, .. } => (lease_until, self.seq),
            State::Completed { expires_at, .. } => (expires_at, self.seq),
        }
    }
}

/// Why a record left the table (for the counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Its deadline passed (lazy removal or sweep).
    Expired,
    /// Removed to make room under the byte budget.
    Evicted,
    /// Replaced by a new owner after its lease ran out.
    TakenOver,
    /// Released by its owner.
    Abandoned,
}

/// Owner tokens: a keyed pseudo-random permutation of a counter.
///
/// A 4-round Feistel network over the two 32-bit halves, with SipHash (std's
/// randomly keyed `RandomState`) as the round function. Being a permutation,
/// distinct counter values give distinct tokens, so a token is never issued
/// twice by one table (or, with disjoint counter strides, by one store);
/// being keyed with a per-process random key, the next token cannot be
/// derived from tokens seen so far without that key. It is "unguessable
/// enough" for fencing stale owners, not a cryptographic capability.
#[derive(Debug, Clone)]
pub(super) struct Tokens {
    key: RandomState,
    next: u64,
    stride: u64,
}

impl Tokens {
    /// Tokens from counter values `start, start + stride, ...` under `key`.
    pub(super) fn new(key: RandomState, start: u64, stride: u64) -> Self {
        Self { key, next: start, stride: stride.max(1) }
    }

    fn permute(&self, x: u64) -> u64 {
        let (mut left, mut right) = ((x >> 32) as u32, x as u32);
        for round in 0..4u32 {
            let f = self.key.hash_one((round, right)) as u32;
            (left, right) = (right, left ^ f);
        }
        ((left as u64) << 32) | right as u64
    }

    /// The next token; never 0 (0 means "no token" at the C boundary).
    pub(super) fn next(&mut self) -> Token {
        loop {
            let c = self.next;
            self.next = self.next.wrapping_add(self.stride);
            let t = self.permute(c);
            if t != 0 {
                return t;
            }
        }
    }
}

/// A single-owner partition of idempotency records.
///
/// Same semantics as [`super::Store`] (see the module documentation), but
/// driven through `&mut self` with an explicit `now` and holding its whole
/// byte budget (`Config::max_bytes`; `Config::shards` is ignored).
#[derive(Debug)]
pub struct Table {
    map: HashMap<Box<[u8]>, Record, SeededState>,
    /// In-progress records by `(lease_until, seq)`.
    leases: BTreeMap<(Nanos, u64), Box<[u8]>>,
    /// Completed records by `(expires_at, seq)`.
    done: BTreeMap<(Nanos, u64), Box<[u8]>>,
    limits: Limits,
    budget: usize,
    used: usize,
    done_bytes: usize,
    seq: u64,
    tokens: Tokens,
    stats: Stats,
}

impl Table {
    /// A table holding at most `config.max_bytes` bytes of records.
    ///
    /// Errors with [`Error::InvalidConfig`] when the limits are inconsistent
    /// (see [`Config`]); `config.shards` is not consulted.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let limits = Limits::from_config(config)?;
        if config.max_bytes < limits.max_record_cost() {
            return Err(Error::InvalidConfig("max_bytes must hold one record of maximum size"));
        }
        Ok(Self::with_parts(limits, config.max_bytes, Tokens::new(RandomState::new(), 0, 1)))
    }

    pub(super) fn with_parts(limits: Limits, budget: usize, tokens: Tokens) -> Self {
        Self {
            map: HashMap::with_hasher(SeededState::new()),
            leases: BTreeMap::new(),
            done: BTreeMap::new(),
            limits,
            budget,
            used: 0,
            done_bytes: 0,
            seq: 0,
            tokens,
            stats: Stats::default(),
        }
    }

    /// Claims `key` for a request whose fingerprint is `fingerprint`, or
    /// reports why not (see [`Begin`]). A started claim lasts `lease`
    /// nanoseconds from `now`.
    pub fn begin_at(
        &mut self,
        key: &[u8],
        fingerprint: &[u8],
        lease: Nanos,
        now: Nanos,
    ) -> Result<Begin, Error> {
        self.limits.check_begin(key, fingerprint, lease)?;
        let mut stale = None;
        if let Some(rec) = self.map.get(key) {
            match &rec.state {
                State::Completed { response, expires_at } if *expires_at > now => {
                    if *rec.fingerprint != *fingerprint {
                        self.stats.mismatches += 1;
                        return Ok(Begin::Mismatch);
                    }
                    self.stats.replays += 1;
                    return Ok(Begin::Completed { response: response.clone() });
                }
                State::InProgress { lease_until, .. } if *lease_until > now => {
                    if *rec.fingerprint != *fingerprint {
                        self.stats.mismatches += 1;
                        return Ok(Begin::Mismatch);
                    }
                    self.stats.in_progress += 1;
                    return Ok(Begin::InProgress { retry_after: *lease_until - now });
                }
                State::Completed { .. } => stale = Some(Cause::Expired),
                State::InProgress { .. } => stale = Some(Cause::TakenOver),
            }
        }
        let cost = record_cost(key.len(), fingerprint.len(), 0);
        // Decided before anything is removed, so that `Full` leaves the
        // key's stale record (and its owner's chance to complete) in place.
        // That record is reclaimable itself, so removing it first would not
        // change the answer.
        if !self.room_possible(cost, now) {
            self.stats.full += 1;
            return Err(Error::Full);
        }
        if let Some(cause) = stale {
            self.remove(key, cause);
        }
        self.reclaim(cost, now);
        let takeover = stale == Some(Cause::TakenOver);
        let token = self.tokens.next();
        let lease_until = now.saturating_add(lease);
        let seq = self.next_seq();
        let owned: Box<[u8]> = key.into();
        self.leases.insert((lease_until, seq), owned.clone());
        let state = State::InProgress { token, lease_until };
        self.map.insert(owned, Record { fingerprint: fingerprint.into(), cost, seq, state });
        self.used += cost;
        self.stats.started += 1;
        self.stats.takeovers += takeover as u64;
        Ok(Begin::Started { token, takeover })
    }

    /// Stores `response` for `key` if `token` owns its in-progress record,
    /// and keeps it for `retention` nanoseconds from `now`.
    pub fn complete_at(
        &mut self,
        key: &[u8],
        token: Token,
        response: &[u8],
        retention: Nanos,
        now: Nanos,
    ) -> Result<(), Error> {
        self.limits.check_complete(key, response.len(), retention)?;
        self.complete_shared(key, token, crate::sync::arc_slice(response), retention, now)
    }

    /// [`Table::complete_at`] with a response already in shared form (the
    /// store copies the bytes before taking its lock).
    pub(super) fn complete_shared(
        &mut self,
        key: &[u8],
        token: Token,
        response: Arc<[u8]>,
        retention: Nanos,
        now: Nanos,
    ) -> Result<(), Error> {
        self.limits.check_complete(key, response.len(), retention)?;
        let slot = match self.owned_slot(key, token, now)? {
            Some(slot) => slot,
            None => return Err(Error::NotFound),
        };
        // Out of the lease index while making room, so that this record (its
        // lease may have run out) is not a candidate for eviction.
        let Some(owned) = self.leases.remove(&slot) else {
            debug_assert!(false, "in-progress record missing from the lease index");
            return Err(Error::NotFound);
        };
        let extra = response.len();
        if !self.make_room(extra, now) {
            self.leases.insert(slot, owned);
            self.stats.complete_full += 1;
            return Err(Error::Full);
        }
        let seq = self.next_seq();
        let expires_at = now.saturating_add(retention);
        let Some(rec) = self.map.get_mut(key) else {
            debug_assert!(false, "record vanished while completing");
            return Err(Error::NotFound);
        };
        rec.cost += extra;
        rec.seq = seq;
        rec.state = State::Completed { response, expires_at };
        let cost = rec.cost;
        self.done.insert((expires_at, seq), owned);
        self.used += extra;
        self.done_bytes += cost;
        self.stats.completed += 1;
        Ok(())
    }

    /// Releases `key` if `token` owns its in-progress record, so that the
    /// next `begin` starts afresh (the request failed in a retryable way).
    pub fn abandon_at(&mut self, key: &[u8], token: Token, now: Nanos) -> Result<(), Error> {
        self.limits.check_key(key)?;
        match self.owned_slot(key, token, now)? {
            Some(_) => {
                self.remove(key, Cause::Abandoned);
                Ok(())
            }
            None => Err(Error::NotFound),
        }
    }

    /// The lease-index slot of `key`'s record if `token` owns it; `None` if
    /// there is no live record; an error if someone else owns it or it is
    /// completed. Removes a completed record found past its retention.
    fn owned_slot(&mut self, key: &[u8], token: Token, now: Nanos) -> Result<Option<(Nanos, u64)>, Error> {
        let Some(rec) = self.map.get(key) else { return Ok(None) };
        match rec.state {
            State::Completed { expires_at, .. } if expires_at <= now => {
                self.remove(key, Cause::Expired);
                Ok(None)
            }
            State::Completed { .. } => Err(Error::AlreadyCompleted),
            State::InProgress { token: owner, .. } if owner != token => Err(Error::NotOwner),
            State::InProgress { .. } => Ok(Some(rec.slot())),
        }
    }

    /// Removes up to `max` records that are over at `now`: completed
    /// records past their retention, and in-progress records whose lease ran
    /// out one retention period ago (the store's [`Config::retention`]), in
    /// the order they became so. Returns how many were removed.
    ///
    /// A stale in-progress record is kept that long so that its owner's late
    /// `complete` is still accepted and the next `begin` reports a takeover,
    /// even when a background sweep runs often; it still makes room for new
    /// records under budget pressure at once.
    pub fn sweep_expired_at(&mut self, now: Nanos, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            let Some((slot, from_done)) = self.first_sweepable(now) else { break };
            self.remove_slot(slot, from_done, Cause::Expired);
            removed += 1;
        }
        removed
    }

    /// When a sweep may remove the stale in-progress record whose lease ran
    /// out at `lease_until`.
    fn sweep_deadline(&self, lease_until: Nanos) -> Nanos {
        lease_until.saturating_add(self.limits.retention)
    }

    /// The next record a sweep removes at `now`, if any: the earliest of the
    /// first completed record past its retention and the first in-progress
    /// record past its [`sweep_deadline`](Self::sweep_deadline) (ties go to
    /// the completed one). `true` means it is in the completed index.
    fn first_sweepable(&self, now: Nanos) -> Option<((Nanos, u64), bool)> {
        let done = self.done.first_key_value().map(|(k, _)| *k).filter(|(until, _)| *until <= now);
        let lease = self
            .leases
            .first_key_value()
            .map(|(k, _)| (*k, self.sweep_deadline(k.0)))
            .filter(|(_, at)| *at <= now);
        match (done, lease) {
            (Some(d), Some((l, at))) if at < d.0 => Some((l, false)),
            (Some(d), _) => Some((d, true)),
            (None, Some((l, _))) => Some((l, false)),
            (None, None) => None,
        }
    }

    /// Counters and occupancy of this table.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.records = self.map.len() as u64;
        s.in_progress_records = self.leases.len() as u64;
        s.bytes_used = self.used as u64;
        s
    }

    /// Number of records (in progress and completed, including completed
    /// ones past their retention that have not been removed yet).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next record to go when reclaiming space: the earliest deadline
    /// among completed records and in-progress records whose lease has run
    /// out at `now`. `true` means it is in the completed index.
    fn first_reclaimable(&self, now: Nanos) -> Option<((Nanos, u64), bool)> {
        let done = self.done.first_key_value().map(|(k, _)| *k);
        let lease = self.leases.first_key_value().map(|(k, _)| *k).filter(|(until, _)| *until <= now);
        match (done, lease) {
            (Some(d), Some(l)) if l < d => Some((l, false)),
            (Some(d), _) => Some((d, true)),
            (None, Some(l)) => Some((l, false)),
            (None, None) => None,
        }
    }

    /// True when `need` more bytes fit once every reclaimable record
    /// (completed, or in progress past its lease) is gone.
    fn room_possible(&self, need: usize, now: Nanos) -> bool {
        let Some(deficit) = (self.used + need).checked_sub(self.budget) else { return true };
        let mut reclaimable = self.done_bytes;
        if reclaimable >= deficit {
            return true;
        }
        for key in self.leases.range(..=(now, u64::MAX)).map(|(_, k)| k) {
            reclaimable += self.map.get(key).map_or(0, |r| r.cost);
            if reclaimable >= deficit {
                return true;
            }
        }
        false
    }

    /// Makes the budget fit `need` more bytes by removing completed records
    /// and in-progress records whose lease ran out, earliest deadline first.
    /// Removes nothing and answers `false` when even that would not do:
    /// in-progress records with a live lease are never evicted.
    fn make_room(&mut self, need: usize, now: Nanos) -> bool {
        if !self.room_possible(need, now) {
            return false;
        }
        self.reclaim(need, now);
        true
    }

    /// The removals of [`make_room`](Self::make_room), once
    /// [`room_possible`](Self::room_possible) has said they will do.
    fn reclaim(&mut self, need: usize, now: Nanos) {
        while self.used + need > self.budget {
            let Some((slot, from_done)) = self.first_reclaimable(now) else {
                debug_assert!(false, "reclaimable bytes were counted but not found");
                return;
            };
            // Past its deadline it expired; before it, it made room.
            let cause = if slot.0 <= now { Cause::Expired } else { Cause::Evicted };
            self.remove_slot(slot, from_done, cause);
        }
    }

    fn remove_slot(&mut self, slot: (Nanos, u64), from_done: bool, cause: Cause) {
        let index = if from_done { &mut self.done } else { &mut self.leases };
        if let Some(key) = index.remove(&slot) {
            if let Some(rec) = self.map.remove(&key) {
                self.forget(&rec, cause);
            }
        }
    }

    /// Removes `key`'s record from the map and its index.
    fn remove(&mut self, key: &[u8], cause: Cause) {
        let Some(rec) = self.map.remove(key) else { return };
        match rec.state {
            State::InProgress { .. } => self.leases.remove(&rec.slot()),
            State::Completed { .. } => self.done.remove(&rec.slot()),
        };
        self.forget(&rec, cause);
    }

    /// Accounting for a record that left the map and its index.
    fn forget(&mut self, rec: &Record, cause: Cause) {
        self.used -= rec.cost;
        if matches!(rec.state, State::Completed { .. }) {
            self.done_bytes -= rec.cost;
        }
        match cause {
            Cause::Expired => self.stats.expired += 1,
            Cause::Evicted => self.stats.evicted += 1,
            Cause::Abandoned => self.stats.abandoned += 1,
            Cause::TakenOver => {}
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_a_permutation_and_never_zero() {
        let mut t = Tokens::new(RandomState::new(), 0, 1);
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let tok = t.next();
            assert_ne!(tok, 0);
            assert!(seen.insert(tok), "token repeated");
        }
        // Interleaved strides (one per shard) never collide either.
        let key = RandomState::new();
        let mut a = Tokens::new(key.clone(), 0, 2);
        let mut b = Tokens::new(key, 1, 2);
        let mut seen = HashSet::new();
        for _ in 0..50_000 {
            assert!(seen.insert(a.next()));
            assert!(seen.insert(b.next()));
        }
    }

    #[test]
    fn tokens_do_not_look_like_a_counter() {
        let mut t = Tokens::new(RandomState::new(), 0, 1);
        let xs: Vec<u64> = (0..64).map(|_| t.next()).collect();
        // Consecutive tokens differ in about half their bits.
        let mean = xs.windows(2).map(|w| (w[0] ^ w[1]).count_ones()).sum::<u32>() as f64 / 63.0;
        assert!((24.0..40.0).contains(&mean), "mean flipped bits {mean}");
    }

    #[test]
    fn indexes_and_accounting_stay_consistent() {
        let config = Config { max_bytes: 4 * 1024, ..Config::small_for_tests() };
        let mut t = Table::new(&config).unwrap();
        let mut now = 1_000;
        for i in 0..200u32 {
            let key = i.to_le_bytes();
            if let Ok(Begin::Started { token, .. }) = t.begin_at(&key, b"fp", 50, now) {
                if i % 3 != 0 {
                    let _ = t.complete_at(&key, token, &[7u8; 40], 500, now);
                }
            }
            now += 7;
            if i % 10 == 0 {
                t.sweep_expired_at(now, 3);
            }
            assert!(t.used <= t.budget);
            assert_eq!(t.map.len(), t.leases.len() + t.done.len());
            let done: usize = t.done.values().map(|k| t.map[k].cost).sum();
            assert_eq!(done, t.done_bytes);
            let all: usize = t.map.values().map(|r| r.cost).sum();
            assert_eq!(all, t.used);
            for (slot, k) in t.leases.iter().chain(t.done.iter()) {
                assert_eq!(t.map[k].slot(), *slot);
            }
        }
    }
}
