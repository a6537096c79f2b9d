//! SSE2 group matching: one 16-byte compare and a movemask per query.

#[cfg(target_arch = "x86")]
use core::arch::x86 as arch;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64 as arch;

use super::{BitMask, CtrlGroup, GroupOps, EMPTY};

/// Sixteen control bytes in one SSE2 register.
#[derive(Clone, Copy, Debug)]
pub struct Group(arch::__m128i);

impl GroupOps for Group {
    #[inline(always)]
    fn load(ctrl: &CtrlGroup) -> Self {
        // SAFETY: `CtrlGroup` is 16 bytes and 16-byte aligned, so the pointer
        // is valid for an aligned 16-byte read; SSE2 is enabled (cfg above).
        Group(unsafe { arch::_mm_load_si128(ctrl.0.as_ptr().cast()) })
    }

    #[inline(always)]
    fn match_tag(self, tag: u8) -> BitMask {
        // SAFETY: SSE2 intrinsics on registers only; SSE2 is enabled at
        // compile time (the module's cfg requires it).
        unsafe {
            let cmp = arch::_mm_cmpeq_epi8(self.0, arch::_mm_set1_epi8(tag as i8));
            BitMask(arch::_mm_movemask_epi8(cmp) as u16)
        }
    }

    #[inline(always)]
    fn match_empty(self) -> BitMask {
        self.match_tag(EMPTY)
    }

    #[inline(always)]
    fn match_empty_or_deleted(self) -> BitMask {
        // SAFETY: as in `match_tag`. EMPTY and DELETED are exactly the bytes
        // with the top bit set, which movemask collects.
        unsafe { BitMask(arch::_mm_movemask_epi8(self.0) as u16) }
    }
}
