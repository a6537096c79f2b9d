//! A sequential reference model of the idempotency store, and a driver that
//! runs one op sequence against both and compares every answer.
//!
//! NOT part of the `resilience` crate (no `mod model;` anywhere in it): it is
//! included with `#[path = ...] mod model;` by `core/tests/prop_idempotency.rs`
//! and `fuzz/fuzz_targets/idempotency_ops.rs`, so that the property test and
//! the fuzz target share one model without widening the public API.
//!
//! The model is deliberately naive: each shard is a `Vec` of records searched
//! linearly, and every eviction or sweep picks the minimum by brute force.
//! It knows the store's documented policy, not its data structures.
#![allow(dead_code)]

use resilience::clock::Nanos;
use resilience::idempotency::{record_cost, Begin, Config, Error, Stats, Store, Token};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Rec {
    key: Vec<u8>,
    fp: Vec<u8>,
    /// `Some` once completed.
    resp: Option<Vec<u8>>,
    token: Token,
    /// Lease end while in progress, retention end once completed.
    deadline: Nanos,
    seq: u64,
    cost: usize,
}

impl Rec {
    /// Whether it may be removed for room at `now`.
    fn reclaimable(&self, now: Nanos) -> bool {
        self.resp.is_some() || self.deadline <= now
    }
}

#[derive(Debug, Default, Clone)]
struct Shard {
    recs: Vec<Rec>,
    seq: u64,
}

impl Shard {
    fn used(&self) -> usize {
        self.recs.iter().map(|r| r.cost).sum()
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.recs.iter().position(|r| r.key == key)
    }

    /// Index of the record with the smallest `(deadline, seq)` among those
    /// `eligible` says yes to.
    fn min_by_deadline(&self, eligible: impl Fn(&Rec) -> bool) -> Option<usize> {
        (0..self.recs.len())
            .filter(|&i| eligible(&self.recs[i]))
            .min_by_key(|&i| (self.recs[i].deadline, self.recs[i].seq))
    }
}

/// The reference model. Tokens it issues are 1, 2, 3, ... in order.
#[derive(Debug, Clone)]
pub struct Model {
    shards: Vec<Shard>,
    budget: usize,
    config: Config,
    next_token: Token,
    cursor: usize,
    stats: Stats,
}

impl Model {
    /// A model of `Store::new(config)` (assumed valid).
    pub fn new(config: &Config) -> Self {
        Self {
            shards: vec![Shard::default(); config.shards],
            budget: config.max_bytes / config.shards,
            config: config.clone(),
            next_token: 1,
            cursor: 0,
            stats: Stats::default(),
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Error> {
        if key.is_empty() {
            Err(Error::EmptyKey)
        } else if key.len() > self.config.max_key_len {
            Err(Error::KeyTooLong { len: key.len(), max: self.config.max_key_len })
        } else {
            Ok(())
        }
    }

    /// Frees `need` bytes in shard `s`, never touching live in-progress
    /// records nor the record of `exclude`. All or nothing.
    fn make_room(&mut self, s: usize, need: usize, now: Nanos, exclude: Option<&[u8]>) -> bool {
        let budget = self.budget;
        let sh = &mut self.shards[s];
        let eligible = |r: &Rec| r.reclaimable(now) && Some(&r.key[..]) != exclude;
        if sh.used() + need <= budget {
            return true;
        }
        let reclaimable: usize = sh.recs.iter().filter(|r| eligible(r)).map(|r| r.cost).sum();
        if sh.used() + need - reclaimable > budget {
            return false;
        }
        while sh.used() + need > budget {
            let i = sh.min_by_deadline(eligible).expect("counted as reclaimable");
            // Past its deadline a record expired; before it, it was evicted.
            if sh.recs.remove(i).deadline <= now {
                self.stats.expired += 1;
            } else {
                self.stats.evicted += 1;
            }
        }
        true
    }

    /// Whether `make_room(s, need, now, None)` would succeed.
    fn room_possible(&self, s: usize, need: usize, now: Nanos) -> bool {
        let sh = &self.shards[s];
        let reclaimable: usize = sh.recs.iter().filter(|r| r.reclaimable(now)).map(|r| r.cost).sum();
        sh.used() + need <= self.budget + reclaimable
    }

    /// The model of `Store::begin_at`; `s` is the key's shard.
    pub fn begin(
        &mut self,
        s: usize,
        key: &[u8],
        fp: &[u8],
        lease: Nanos,
        now: Nanos,
    ) -> Result<Begin, Error> {
        self.check_key(key)?;
        if fp.len() > self.config.max_fingerprint_len {
            return Err(Error::FingerprintTooLong { len: fp.len(), max: self.config.max_fingerprint_len });
        }
        if lease == 0 {
            return Err(Error::ZeroLease);
        }
        // The key's stale record, if any: completed (true) or in progress.
        let mut stale = None;
        if let Some(i) = self.shards[s].find(key) {
            let r = &self.shards[s].recs[i];
            if r.deadline > now {
                if r.fp != fp {
                    self.stats.mismatches += 1;
                    return Ok(Begin::Mismatch);
                }
                return Ok(match &r.resp {
                    Some(resp) => {
                        self.stats.replays += 1;
                        Begin::Completed { response: resilience::sync::arc_slice(resp) }
                    }
                    None => {
                        self.stats.in_progress += 1;
                        Begin::InProgress { retry_after: r.deadline - now }
                    }
                });
            }
            stale = Some(r.resp.is_some());
        }
        let cost = record_cost(key.len(), fp.len(), 0);
        // `Full` removes nothing, not even the key's own stale record.
        if !self.room_possible(s, cost, now) {
            self.stats.full += 1;
            return Err(Error::Full);
        }
        let takeover = stale == Some(false);
        if let Some(completed) = stale {
            let i = self.shards[s].find(key).expect("found above");
            self.shards[s].recs.remove(i);
            self.stats.expired += completed as u64;
        }
        assert!(self.make_room(s, cost, now, None), "room was possible");
        let token = self.next_token;
        self.next_token += 1;
        let sh = &mut self.shards[s];
        sh.seq += 1;
        sh.recs.push(Rec {
            key: key.to_vec(),
            fp: fp.to_vec(),
            resp: None,
            token,
            deadline: now.saturating_add(lease),
            seq: sh.seq,
            cost,
        });
        self.stats.started += 1;
        self.stats.takeovers += takeover as u64;
        Ok(Begin::Started { token, takeover })
    }

    /// Shared part of complete and abandon: the record's index if `token`
    /// owns it.
    fn owned(&mut self, s: usize, key: &[u8], token: Token, now: Nanos) -> Result<usize, Error> {
        let Some(i) = self.shards[s].find(key) else { return Err(Error::NotFound) };
        let r = &self.shards[s].recs[i];
        if r.resp.is_some() {
            if r.deadline <= now {
                self.shards[s].recs.remove(i);
                self.stats.expired += 1;
                return Err(Error::NotFound);
            }
            return Err(Error::AlreadyCompleted);
        }
        if r.token != token {
            return Err(Error::NotOwner);
        }
        Ok(i)
    }

    /// The model of `Store::complete_at`.
    pub fn complete(
        &mut self,
        s: usize,
        key: &[u8],
        token: Token,
        resp: &[u8],
        retention: Nanos,
        now: Nanos,
    ) -> Result<(), Error> {
        self.check_key(key)?;
        if resp.len() > self.config.max_response_len {
            return Err(Error::ResponseTooLong { len: resp.len(), max: self.config.max_response_len });
        }
        if retention == 0 {
            return Err(Error::ZeroRetention);
        }
        self.owned(s, key, token, now)?;
        if !self.make_room(s, resp.len(), now, Some(key)) {
            self.stats.complete_full += 1;
            return Err(Error::Full);
        }
        let sh = &mut self.shards[s];
        let i = sh.find(key).expect("excluded from eviction");
        sh.seq += 1;
        let r = &mut sh.recs[i];
        r.resp = Some(resp.to_vec());
        r.cost += resp.len();
        r.deadline = now.saturating_add(retention);
        r.seq = sh.seq;
        self.stats.completed += 1;
        Ok(())
    }

    /// The model of `Store::abandon_at`.
    pub fn abandon(&mut self, s: usize, key: &[u8], token: Token, now: Nanos) -> Result<(), Error> {
        self.check_key(key)?;
        let i = self.owned(s, key, token, now)?;
        self.shards[s].recs.remove(i);
        self.stats.abandoned += 1;
        Ok(())
    }

    /// The model of `Store::sweep_expired_at`.
    pub fn sweep(&mut self, now: Nanos, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let n = self.shards.len();
        let retention = self.config.retention;
        let start = self.cursor % n;
        let (mut removed, mut last) = (0, start);
        for i in 0..n {
            if removed >= max {
                break;
            }
            last = (start + i) % n;
            let sh = &mut self.shards[last];
            while removed < max {
                // Over: completed past retention, or in progress with a
                // lease that ran out one retention period ago; earliest
                // first, a completed record before an in-progress one on a
                // tie, then by deadline and sequence.
                let over = |r: &Rec| {
                    if r.resp.is_some() {
                        (r.deadline, 0u8, r.deadline, r.seq)
                    } else {
                        (r.deadline.saturating_add(retention), 1u8, r.deadline, r.seq)
                    }
                };
                let Some(j) = (0..sh.recs.len())
                    .filter(|&i| over(&sh.recs[i]).0 <= now)
                    .min_by_key(|&i| over(&sh.recs[i]))
                else {
                    break;
                };
                sh.recs.remove(j);
                self.stats.expired += 1;
                removed += 1;
            }
        }
        self.cursor = (last + 1) % n;
        removed
    }

    /// Counters and occupancy, as `Store::stats` reports them.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.records = self.shards.iter().map(|sh| sh.recs.len() as u64).sum();
        s.in_progress_records =
            self.shards.iter().flat_map(|sh| &sh.recs).filter(|r| r.resp.is_none()).count() as u64;
        s.bytes_used = self.shards.iter().map(|sh| sh.used() as u64).sum();
        s
    }
}

/// One step of a generated scenario. Small integers pick keys, fingerprints
/// and tokens from pools so that collisions happen often.
#[derive(Debug, Clone)]
pub enum Op {
    /// `begin(key, fp, lease)`.
    Begin { key: u8, fp: u8, lease: Nanos },
    /// `complete(key, token, response of resp_len bytes, retention)`.
    Complete { key: u8, token: u8, resp_len: u16, retention: Nanos },
    /// `abandon(key, token)`.
    Abandon { key: u8, token: u8 },
    /// Time moves forward.
    Advance(Nanos),
    /// Time steps backwards (a host clock misbehaving).
    Rewind(Nanos),
    /// `sweep_expired(max)`.
    Sweep(u8),
}

/// Number of distinct valid keys the scenario picks from.
pub const KEYS: u8 = 6;

/// Key bytes for pick `k`: 255 is empty, 254 one byte too long.
pub fn key_bytes(k: u8, config: &Config) -> Vec<u8> {
    match k {
        255 => Vec::new(),
        254 => vec![b'x'; config.max_key_len + 1],
        _ => format!("key-{}", k % KEYS).into_bytes(),
    }
}

/// Fingerprint bytes for pick `f`: 255 is one byte too long; others pick one
/// of three fingerprints of different lengths (empty included).
pub fn fingerprint_bytes(f: u8, config: &Config) -> Vec<u8> {
    match f {
        255 => vec![b'f'; config.max_fingerprint_len + 1],
        _ => [&b""[..], b"a", b"bbbbbbbb"][f as usize % 3].to_vec(),
    }
}

/// A token pick that is not an issued token (other picks count back from
/// the latest issued token).
pub const FORGED_TOKEN: u8 = 255;

/// Runs `ops` against a fresh `Store::new(config)` and the model, starting
/// at `start`, and panics at the first answer or statistic that differs.
/// Real tokens are mapped to model tokens as they are issued; the mapping
/// must stay one-to-one. Returns the final statistics (so that callers can
/// check the scenarios reached every kind of event).
pub fn run(config: &Config, start: Nanos, ops: &[Op]) -> Stats {
    let store = Store::new(config.clone()).expect("valid config");
    let mut model = Model::new(config);
    let mut now = start;
    // Issued (real, model) token pairs, and real -> model.
    let mut issued: Vec<(Token, Token)> = Vec::new();
    let mut to_model: HashMap<Token, Token> = HashMap::new();
    let mut fill = 0u8;
    let pick = |issued: &[(Token, Token)], t: u8| -> (Token, Token) {
        if t == FORGED_TOKEN || issued.is_empty() {
            // Model tokens count up from 1; u64::MAX is never issued.
            (0x5EED_0000_0000_0001, u64::MAX)
        } else {
            issued[issued.len() - 1 - t as usize % issued.len()]
        }
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Begin { key, fp, lease } => {
                let (k, f) = (key_bytes(key, config), fingerprint_bytes(fp, config));
                let real = store.begin_at(&k, &f, lease, now);
                let want = model.begin(store.shard_of(&k), &k, &f, lease, now);
                let real = match real {
                    Ok(Begin::Started { token, takeover }) => {
                        if let Ok(Begin::Started { token: m, .. }) = want {
                            assert!(
                                !to_model.contains_key(&token),
                                "step {step}: token {token} issued twice"
                            );
                            to_model.insert(token, m);
                            issued.push((token, m));
                        }
                        Ok(Begin::Started { token: to_model.get(&token).copied().unwrap_or(0), takeover })
                    }
                    other => other,
                };
                assert_eq!(real, want, "step {step}: {op:?} at {now}");
            }
            Op::Complete { key, token, resp_len, retention } => {
                let k = key_bytes(key, config);
                let (rt, mt) = pick(&issued, token);
                fill = fill.wrapping_add(1);
                let resp: Vec<u8> = (0..resp_len as usize).map(|i| fill ^ i as u8).collect();
                let real = store.complete_at(&k, rt, &resp, retention, now);
                let want = model.complete(store.shard_of(&k), &k, mt, &resp, retention, now);
                assert_eq!(real, want, "step {step}: {op:?} at {now}");
            }
            Op::Abandon { key, token } => {
                let k = key_bytes(key, config);
                let (rt, mt) = pick(&issued, token);
                let real = store.abandon_at(&k, rt, now);
                let want = model.abandon(store.shard_of(&k), &k, mt, now);
                assert_eq!(real, want, "step {step}: {op:?} at {now}");
            }
            Op::Advance(by) => now = now.saturating_add(by),
            Op::Rewind(by) => now = now.saturating_sub(by),
            Op::Sweep(max) => {
                let real = store.sweep_expired_at(now, max as usize);
                let want = model.sweep(now, max as usize);
                assert_eq!(real, want, "step {step}: {op:?} at {now}");
            }
        }
        assert_eq!(store.stats(), model.stats(), "step {step}: stats after {op:?} at {now}");
    }
    store.stats()
}
