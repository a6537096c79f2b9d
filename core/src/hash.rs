//! A fast, seeded, non-cryptographic hash for keyed state.
//!
//! Tables keyed by client-controlled bytes need a hash that is fast for short
//! keys and seeded per process so that an attacker cannot precompute
//! colliding keys (HashDoS). This is a folded-multiply construction in the
//! family of foldhash and wyhash: every 16 bytes of input go through one
//! 64x64->128-bit multiply whose halves are XOR-folded. Both halves of the
//! result are well mixed, so callers may take the low bits for an index and
//! the top 7 bits for a tag.
//!
//! It is not a MAC: do not use it where an adversary can observe hash values.

use std::hash::{BuildHasher, Hasher};

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;
const K3: u64 = 0x082e_fa98_ec4e_6c89;

#[inline(always)]
const fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline(always)]
fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(buf)
}

#[inline(always)]
fn read_u32(b: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(buf) as u64
}

/// Mixes `bytes` into the accumulator `acc` under `seed`. Keys of up to 16
/// bytes (the common case) stay inline at the call site; longer ones take
/// the loop out of line.
#[inline(always)]
fn mix_bytes(acc: u64, seed: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let acc = acc.wrapping_add(len as u64).rotate_left(23);
    if len <= 16 {
        let (a, b) = if len >= 8 {
            (read_u64(bytes, 0), read_u64(bytes, len - 8))
        } else if len >= 4 {
            (read_u32(bytes, 0), read_u32(bytes, len - 4))
        } else if len > 0 {
            let v = (bytes[0] as u64) | ((bytes[len / 2] as u64) << 8) | ((bytes[len - 1] as u64) << 16);
            (v, 0)
        } else {
            (0, 0)
        };
        return folded_multiply(a ^ acc ^ K0, b ^ seed ^ K1);
    }
    mix_long(acc, seed, bytes)
}

#[inline(never)]
fn mix_long(acc: u64, seed: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut acc = acc;
    let mut i = 0;
    while i + 16 < len {
        acc = folded_multiply(read_u64(bytes, i) ^ acc ^ K0, read_u64(bytes, i + 8) ^ seed ^ K1);
        i += 16;
    }
    // The last 16 bytes, overlapping the previous chunk when len % 16 != 0.
    folded_multiply(read_u64(bytes, len - 16) ^ acc ^ K2, read_u64(bytes, len - 8) ^ seed ^ K3)
}

/// Hashes a byte string under `seed`.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    finish(seed, mix_bytes(seed, seed, bytes))
}

/// Hashes one `u64` under `seed`.
#[inline]
pub fn hash_u64(seed: u64, x: u64) -> u64 {
    finish(seed, folded_multiply(x ^ seed ^ K0, K1))
}

#[inline(always)]
fn finish(seed: u64, acc: u64) -> u64 {
    folded_multiply(acc ^ K2, seed ^ K3)
}

/// A [`Hasher`] built by [`SeededState`].
#[derive(Debug, Clone)]
pub struct SeededHasher {
    acc: u64,
    seed: u64,
}

impl Hasher for SeededHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.acc = mix_bytes(self.acc, self.seed, bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.acc = folded_multiply(i ^ self.acc ^ K0, self.seed ^ K1);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        finish(self.seed, self.acc)
    }
}

/// A [`BuildHasher`] with a per-instance seed.
///
/// [`SeededState::new`] draws a random seed (from the standard library's
/// per-process random keys); [`SeededState::with_seed`] fixes it, for tests
/// and for shard routing that must agree across threads of one process.
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

impl SeededState {
    /// A state with a fresh random seed.
    pub fn new() -> Self {
        let s = std::collections::hash_map::RandomState::new();
        Self { seed: s.hash_one(0x5EED_u64) | 1 }
    }

    /// A state with a fixed seed.
    pub const fn with_seed(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Hashes a byte string directly (no `Hash` length prefix).
    #[inline]
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        hash_bytes(self.seed, bytes)
    }
}

impl Default for SeededState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;

    #[inline]
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher { acc: self.seed, seed: self.seed }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_under_a_seed_and_seed_sensitive() {
        let a = SeededState::with_seed(1);
        let b = SeededState::with_seed(2);
        assert_eq!(a.hash_one(42u64), a.hash_one(42u64));
        assert_ne!(a.hash_one(42u64), b.hash_one(42u64));
        assert_eq!(a.hash_bytes(b"key"), hash_bytes(1, b"key"));
        assert_ne!(hash_bytes(1, b"key"), hash_bytes(2, b"key"));
    }

    #[test]
    fn distinct_inputs_of_every_length_do_not_collide() {
        let mut seen = HashSet::new();
        let data: Vec<u8> = (0..200u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 0..=data.len() {
            assert!(seen.insert(hash_bytes(7, &data[..len])), "collision at len {len}");
        }
        // Single-bit flips in every position change the hash.
        for len in [1usize, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 100] {
            let base = hash_bytes(7, &data[..len]);
            for bit in 0..len * 8 {
                let mut d = data[..len].to_vec();
                d[bit / 8] ^= 1 << (bit % 8);
                assert_ne!(hash_bytes(7, &d), base, "len {len} bit {bit}");
            }
        }
    }

    #[test]
    fn sequential_u64_spread_over_tags_and_buckets() {
        // Top 7 bits (tags) and low 10 bits (buckets) both fill evenly.
        let s = SeededState::with_seed(99);
        let mut tags = [0u32; 128];
        let mut buckets = [0u32; 1024];
        let n = 1u64 << 17;
        for i in 0..n {
            let h = s.hash_one(i);
            tags[(h >> 57) as usize] += 1;
            buckets[(h & 1023) as usize] += 1;
        }
        let tag_mean = n as f64 / 128.0;
        let bucket_mean = n as f64 / 1024.0;
        assert!(tags.iter().all(|&c| (c as f64 - tag_mean).abs() < tag_mean * 0.1));
        assert!(buckets.iter().all(|&c| (c as f64 - bucket_mean).abs() < bucket_mean * 0.35));
    }
}
