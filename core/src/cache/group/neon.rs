//! NEON group matching (aarch64): one 16-byte compare, then the comparison
//! bytes are reduced to a 16-bit mask (NEON has no movemask).

use core::arch::aarch64 as arch;

use super::{BitMask, CtrlGroup, GroupOps, EMPTY};

/// Sixteen control bytes in one NEON register.
#[derive(Clone, Copy, Debug)]
pub struct Group(arch::uint8x16_t);

/// Bit `i % 8` in byte `i`: AND-ing a comparison result with it and summing
/// each half gives the mask's low and high byte.
const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

#[inline(always)]
fn movemask(cmp: arch::uint8x16_t) -> BitMask {
    // SAFETY: NEON intrinsics on registers, plus one 16-byte read of the
    // constant `BITS` array; NEON is enabled at compile time (module cfg).
    unsafe {
        let bits = arch::vandq_u8(cmp, arch::vld1q_u8(BITS.as_ptr()));
        let lo = arch::vaddv_u8(arch::vget_low_u8(bits)) as u16;
        let hi = arch::vaddv_u8(arch::vget_high_u8(bits)) as u16;
        BitMask(lo | (hi << 8))
    }
}

impl GroupOps for Group {
    #[inline(always)]
    fn load(ctrl: &CtrlGroup) -> Self {
        // SAFETY: `CtrlGroup` is 16 readable bytes; NEON is enabled.
        Group(unsafe { arch::vld1q_u8(ctrl.0.as_ptr()) })
    }

    #[inline(always)]
    fn match_tag(self, tag: u8) -> BitMask {
        // SAFETY: register-only NEON intrinsics; NEON is enabled.
        movemask(unsafe { arch::vceqq_u8(self.0, arch::vdupq_n_u8(tag)) })
    }

    #[inline(always)]
    fn match_empty(self) -> BitMask {
        self.match_tag(EMPTY)
    }

    #[inline(always)]
    fn match_empty_or_deleted(self) -> BitMask {
        // SAFETY: register-only NEON intrinsics; NEON is enabled. A signed
        // compare with zero selects the bytes whose top bit is set.
        movemask(unsafe { arch::vcltzq_s8(arch::vreinterpretq_s8_u8(self.0)) })
    }
}
