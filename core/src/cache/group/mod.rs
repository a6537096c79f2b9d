//! Control-byte groups: 16 one-byte tags matched at once.
//!
//! Each table bucket has one control byte: [`EMPTY`], [`DELETED`] (a
//! tombstone; the cache table has none, it keeps per-group overflow counts
//! instead) or a *tag*, the top 7 bits of the key's hash (top bit clear).
//! A lookup loads a [`Group`] of 16 control bytes and asks which of them equal
//! the key's tag; only those slots are compared by key.
//!
//! Layout follows hashbrown: one module per implementation, all exposing the
//! same API through the [`GroupOps`] trait, and one cfg chain below picks the
//! default [`Group`]:
//!
//! 1. `sse2` on x86 / x86-64 when SSE2 is enabled (always on x86-64),
//! 2. `neon` on little-endian aarch64 with NEON,
//! 3. `generic` (SWAR on two `u64` words) everywhere else,
//!
//! and Miri, or the cargo feature `portable-group`, always gets `generic`.
//! The [`generic`] module is compiled on every target so that tests run it
//! directly and tables can be instantiated with it (`Table<.., Generic>`).

pub mod generic;
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_endian = "little",
    not(miri),
    not(feature = "portable-group")
))]
pub mod neon;
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2",
    not(miri),
    not(feature = "portable-group")
))]
pub mod sse2;

#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2",
    not(miri),
    not(feature = "portable-group")
))]
pub use sse2::Group;

#[cfg(all(
    target_arch = "aarch64",
    target_feature = "neon",
    target_endian = "little",
    not(miri),
    not(feature = "portable-group")
))]
pub use neon::Group;

#[cfg(not(any(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2",
        not(miri),
        not(feature = "portable-group")
    ),
    all(
        target_arch = "aarch64",
        target_feature = "neon",
        target_endian = "little",
        not(miri),
        not(feature = "portable-group")
    )
)))]
pub use generic::Group;

/// The portable implementation, usable on every target.
pub use generic::Group as Generic;

/// Number of control bytes in a group.
pub const WIDTH: usize = 16;

/// Control byte of a bucket that was never used since the last rebuild.
pub const EMPTY: u8 = 0xFF;
/// Control byte of a tombstone: a free bucket that probes must pass (the
/// matchers support it; the cache table frees buckets as EMPTY).
pub const DELETED: u8 = 0x80;

/// The 7-bit tag of a hash (its top 7 bits); always a FULL control byte.
#[inline(always)]
pub const fn tag(hash: u64) -> u8 {
    (hash >> 57) as u8
}

/// True when `ctrl` holds a tag (the bucket holds an entry).
#[inline(always)]
pub const fn is_full(ctrl: u8) -> bool {
    ctrl & 0x80 == 0
}

/// Sixteen control bytes, aligned so that a group loads with one aligned
/// 16-byte load (and never straddles a cache line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct CtrlGroup(pub [u8; WIDTH]);

impl CtrlGroup {
    /// A group of [`EMPTY`] bytes.
    pub const EMPTY: CtrlGroup = CtrlGroup([EMPTY; WIDTH]);
}

/// The operations every group implementation provides.
pub trait GroupOps: Copy {
    /// Loads the 16 control bytes of `ctrl`.
    fn load(ctrl: &CtrlGroup) -> Self;
    /// Bytes equal to `tag` (a FULL control byte).
    fn match_tag(self, tag: u8) -> BitMask;
    /// Bytes equal to [`EMPTY`].
    fn match_empty(self) -> BitMask;
    /// Bytes equal to [`EMPTY`] or [`DELETED`] (top bit set).
    fn match_empty_or_deleted(self) -> BitMask;
    /// Bytes holding a tag (top bit clear).
    #[inline]
    fn match_full(self) -> BitMask {
        self.match_empty_or_deleted().invert()
    }
}

/// One bit per control byte of a group: bit `i` set means byte `i` matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitMask(pub u16);

impl BitMask {
    /// True when any byte matched.
    #[inline(always)]
    pub const fn any(self) -> bool {
        self.0 != 0
    }

    /// The lowest matching index.
    #[inline(always)]
    pub const fn lowest(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as usize)
        }
    }

    /// The bytes that did not match.
    #[inline(always)]
    pub const fn invert(self) -> BitMask {
        BitMask(!self.0)
    }
}

impl Iterator for BitMask {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let i = self.lowest()?;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    /// The byte-at-a-time definition every implementation must agree with.
    fn scalar(ctrl: &CtrlGroup, f: impl Fn(u8) -> bool) -> BitMask {
        let mut m = 0u16;
        for (i, &b) in ctrl.0.iter().enumerate() {
            if f(b) {
                m |= 1 << i;
            }
        }
        BitMask(m)
    }

    fn check_impl<G: GroupOps>(ctrl: &CtrlGroup) {
        let g = G::load(ctrl);
        assert_eq!(g.match_empty(), scalar(ctrl, |b| b == EMPTY), "{ctrl:?}");
        assert_eq!(g.match_empty_or_deleted(), scalar(ctrl, |b| b & 0x80 != 0), "{ctrl:?}");
        assert_eq!(g.match_full(), scalar(ctrl, is_full), "{ctrl:?}");
        for t in [0u8, 1, 0x3F, 0x40, 0x7E, 0x7F] {
            assert_eq!(g.match_tag(t), scalar(ctrl, |b| b == t), "tag {t:#x} in {ctrl:?}");
        }
        for &b in &ctrl.0 {
            if is_full(b) {
                assert_eq!(g.match_tag(b), scalar(ctrl, |x| x == b));
            }
        }
    }

    fn groups() -> Vec<CtrlGroup> {
        let mut out =
            vec![CtrlGroup::EMPTY, CtrlGroup([DELETED; 16]), CtrlGroup([0; 16]), CtrlGroup([0x7F; 16])];
        // Deterministic pseudo-random mixes of tags, EMPTY and DELETED,
        // including neighbouring values that SWAR tricks confuse (0x00/0x01,
        // 0x7F/0x80, 0x80/0xFF).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut g = [0u8; 16];
            for b in &mut g {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = match x % 8 {
                    0 => EMPTY,
                    1 => DELETED,
                    2 => 0,
                    3 => 1,
                    4 => 0x7F,
                    _ => (x >> 8) as u8 & 0x7F,
                };
            }
            out.push(CtrlGroup(g));
        }
        out
    }

    #[test]
    fn generic_matches_scalar_definition() {
        for g in groups() {
            check_impl::<Generic>(&g);
        }
    }

    #[test]
    fn default_group_matches_scalar_definition() {
        for g in groups() {
            check_impl::<Group>(&g);
        }
    }

    #[test]
    fn bitmask_iterates_in_order() {
        let m = BitMask(0b1000_0000_0010_0101);
        assert_eq!(m.collect::<Vec<_>>(), vec![0, 2, 5, 15]);
        assert_eq!(BitMask(0).lowest(), None);
        assert!(!BitMask(0).any());
        assert_eq!(BitMask(0).invert(), BitMask(u16::MAX));
    }

    #[test]
    fn tags_are_full_control_bytes() {
        for h in [0u64, u64::MAX, 1 << 63, 0x0123_4567_89AB_CDEF] {
            assert!(is_full(tag(h)));
        }
        assert!(!is_full(EMPTY));
        assert!(!is_full(DELETED));
    }
}
