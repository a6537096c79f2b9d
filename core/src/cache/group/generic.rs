//! Portable group matching: SWAR ("SIMD within a register") on two `u64`
//! words. Exact (no false positives), so it is interchangeable with the SIMD
//! implementations bit for bit.

use super::{BitMask, CtrlGroup, GroupOps, EMPTY};

const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HI: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Sixteen control bytes as two little-endian words.
#[derive(Clone, Copy, Debug)]
pub struct Group(u64, u64);

/// Packs the high bit of each byte of `x` (all other bits clear) into the
/// low 8 bits: byte `i` -> bit `i`.
#[inline(always)]
const fn pack_high_bits(x: u64) -> u16 {
    // Bit 7 of byte i moves to bit 56 + i: the multiplier adds one shifted
    // copy per byte and no two partial products land on the same bit.
    (((x >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56) as u16
}

/// High bit set in each byte of `x` that is zero; exact.
#[inline(always)]
const fn zero_bytes(x: u64) -> u64 {
    !(((x & LO7).wrapping_add(LO7)) | x | LO7)
}

impl Group {
    #[inline(always)]
    fn mask(self, f: impl Fn(u64) -> u64) -> BitMask {
        BitMask(pack_high_bits(f(self.0)) | (pack_high_bits(f(self.1)) << 8))
    }
}

impl GroupOps for Group {
    #[inline(always)]
    fn load(ctrl: &CtrlGroup) -> Self {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&ctrl.0[..8]);
        hi.copy_from_slice(&ctrl.0[8..]);
        Group(u64::from_le_bytes(lo), u64::from_le_bytes(hi))
    }

    #[inline(always)]
    fn match_tag(self, tag: u8) -> BitMask {
        let rep = ONES.wrapping_mul(tag as u64);
        self.mask(|w| zero_bytes(w ^ rep))
    }

    #[inline(always)]
    fn match_empty(self) -> BitMask {
        let rep = ONES.wrapping_mul(EMPTY as u64);
        self.mask(|w| zero_bytes(w ^ rep))
    }

    #[inline(always)]
    fn match_empty_or_deleted(self) -> BitMask {
        self.mask(|w| w & HI)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn pack_high_bits_is_a_movemask() {
        for m in 0..=255u16 {
            let mut x = 0u64;
            for i in 0..8 {
                if m & (1 << i) != 0 {
                    x |= 0x80 << (8 * i);
                }
            }
            assert_eq!(pack_high_bits(x), m);
        }
    }

    #[test]
    fn zero_bytes_is_exact() {
        for b in 0..=255u64 {
            let x = b | 0x0203_0405_FF80_0100;
            let z = zero_bytes(x);
            assert_eq!(z & 0xFF != 0, b == 0, "byte {b:#x}");
            assert_eq!(z >> 8, 0, "only byte 0 can be zero in {x:#x}");
        }
    }
}
