//! Byte-string keys that compare inline and store short keys in place.
//!
//! `Box<[u8]>` keys compare through `[u8]`'s `PartialEq`, a call into libc
//! `memcmp`/`bcmp` for every candidate, and every comparison follows the
//! key's heap pointer: one more cache line per lookup. [`ByteKey`] (owned,
//! 16 bytes like a `Box<[u8]>`) keeps keys of up to [`INLINE_MAX`] (15)
//! bytes inside itself, so a table slot holds the key and a hit reads no
//! other line for it; [`ByteStr`] (borrowed, what lookups take) compares
//! keys of up to 32 bytes with overlapping word loads and no call. Both
//! hash the bytes once (the byte hash mixes the length itself).
//!
//! Used for the byte-keyed tables behind the C ABI; a table keyed by
//! `ByteKey` is looked up with [`ByteStr::new`].

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// `a == b` for byte strings, without a call for lengths up to 32.
///
/// Each length class reads the first and the last word (overlapping when the
/// length is not a multiple of the word), which together cover every byte.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        if n <= 16 {
            return ((word(a, 0) ^ word(b, 0)) | (word(a, n - 8) ^ word(b, n - 8))) == 0;
        }
        if n <= 32 {
            return ((word(a, 0) ^ word(b, 0))
                | (word(a, 8) ^ word(b, 8))
                | (word(a, n - 16) ^ word(b, n - 16))
                | (word(a, n - 8) ^ word(b, n - 8)))
                == 0;
        }
        return a == b;
    }
    if n >= 4 {
        return ((half(a, 0) ^ half(b, 0)) | (half(a, n - 4) ^ half(b, n - 4))) == 0;
    }
    // 0..=3 bytes: positions 0, n/2 and n-1 cover them all.
    n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
}

#[inline(always)]
fn move16(dst: &mut [u8], src: &[u8], at: usize) {
    let mut w = [0u8; 16];
    w.copy_from_slice(&src[at..at + 16]);
    dst[at..at + 16].copy_from_slice(&w);
}

#[inline(always)]
fn move8(dst: &mut [u8], src: &[u8], at: usize) {
    let mut w = [0u8; 8];
    w.copy_from_slice(&src[at..at + 8]);
    dst[at..at + 8].copy_from_slice(&w);
}

/// `dst.copy_from_slice(src)` without a call for up to 64 bytes: a cache
/// value copied out to a caller is usually short, and a libc `memcpy` call
/// costs more than the copy. Each size class moves the first and the last
/// words (overlapping), which together cover every byte.
///
/// # Panics
/// If the lengths differ, as `copy_from_slice` does.
#[inline(always)]
pub fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n, "copy_bytes: lengths differ");
    if n >= 16 {
        if n <= 32 {
            move16(dst, src, 0);
            move16(dst, src, n - 16);
        } else if n <= 64 {
            move16(dst, src, 0);
            move16(dst, src, 16);
            move16(dst, src, n - 32);
            move16(dst, src, n - 16);
        } else {
            dst.copy_from_slice(src);
        }
    } else if n >= 8 {
        move8(dst, src, 0);
        move8(dst, src, n - 8);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// A borrowed byte-string key: what lookups in a [`ByteKey`] table take.
#[repr(transparent)]
#[derive(Eq)]
pub struct ByteStr([u8]);

impl ByteStr {
    /// Views `bytes` as a key (no copy).
    #[inline(always)]
    pub fn new(bytes: &[u8]) -> &ByteStr {
        // SAFETY: `ByteStr` is `repr(transparent)` over `[u8]`, so the two
        // fat pointers have the same layout and metadata (the length), and
        // the lifetime is carried over unchanged.
        unsafe { &*(bytes as *const [u8] as *const ByteStr) }
    }

    /// The bytes.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for ByteStr {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        bytes_eq(&self.0, &other.0)
    }
}

impl Hash for ByteStr {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The length is mixed by the byte hash itself; `ByteKey` hashes the
        // same way, as `Borrow` requires.
        state.write(&self.0);
    }
}

impl Deref for ByteStr {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl ToOwned for ByteStr {
    type Owned = ByteKey;
    fn to_owned(&self) -> ByteKey {
        ByteKey::new(&self.0)
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Longest key stored inline (in the key itself, no allocation).
pub const INLINE_MAX: usize = if cfg!(target_endian = "little") { 15 } else { 0 };

/// Marks an inline key in the last byte (the low 7 bits are its length). A
/// heap key's length word has that byte's top bit clear: lengths stay below
/// `isize::MAX`.
const INLINE_TAG: u8 = 0x80;

#[repr(C)]
#[derive(Clone, Copy)]
struct Heap {
    ptr: *mut u8,
    len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Inline {
    bytes: [u8; 15],
    tag: u8,
}

/// All 16 bytes are initialised in either form (no padding), so each field
/// may be read as bytes; `heap` is read only when the key is not inline.
#[repr(C)]
#[derive(Clone, Copy)]
union Repr {
    heap: Heap,
    inline: Inline,
    words: [u64; 2],
}

/// An owned byte-string key, 16 bytes: keys of up to [`INLINE_MAX`] bytes
/// live inside it (so a table slot holds them and a lookup reads no other
/// cache line), longer ones on the heap.
pub struct ByteKey(Repr);

// SAFETY: a heap `ByteKey` uniquely owns its bytes (never shared, never
// mutated after creation), like a `Box<[u8]>`, which is Send and Sync.
unsafe impl Send for ByteKey {}
// SAFETY: as above; `&ByteKey` only reads.
unsafe impl Sync for ByteKey {}

impl ByteKey {
    /// A copy of `bytes` as a key.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_MAX {
            let mut inline = Inline { bytes: [0; 15], tag: INLINE_TAG | bytes.len() as u8 };
            inline.bytes[..bytes.len()].copy_from_slice(bytes);
            Self(Repr { inline })
        } else {
            Self::from_box(bytes.into())
        }
    }

    fn from_box(b: Box<[u8]>) -> Self {
        if b.len() <= INLINE_MAX {
            return Self::new(&b);
        }
        let len = b.len();
        let ptr = Box::into_raw(b) as *mut u8;
        Self(Repr { heap: Heap { ptr, len } })
    }

    #[inline(always)]
    fn is_inline(&self) -> bool {
        // SAFETY: every byte of `Repr` is initialised in both forms.
        unsafe { self.0.inline.tag & INLINE_TAG != 0 }
    }

    /// The key as the borrowed form lookups take.
    #[inline(always)]
    pub fn as_str(&self) -> &ByteStr {
        ByteStr::new(self.as_bytes())
    }

    /// The bytes.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        if self.is_inline() {
            // SAFETY: inline form (checked above): `tag`'s low bits are the
            // length, at most 15, of the bytes stored in place.
            unsafe {
                let i = &self.0.inline;
                i.bytes.get_unchecked(..(i.tag & !INLINE_TAG) as usize)
            }
        } else {
            // SAFETY: heap form: `ptr`/`len` came from `Box::into_raw` of a
            // `Box<[u8]>` this key owns until it drops.
            unsafe { std::slice::from_raw_parts(self.0.heap.ptr, self.0.heap.len) }
        }
    }

    /// True when the key is stored inline (at most [`INLINE_MAX`] bytes).
    pub fn is_stored_inline(&self) -> bool {
        self.is_inline()
    }
}

impl Drop for ByteKey {
    fn drop(&mut self) {
        if !self.is_inline() {
            // SAFETY: heap form: the pointer and length came from
            // `Box::into_raw` and are released exactly once, here.
            unsafe {
                let Heap { ptr, len } = self.0.heap;
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)));
            }
        }
    }
}

impl Clone for ByteKey {
    fn clone(&self) -> Self {
        if self.is_inline() {
            Self(self.0)
        } else {
            Self::new(self.as_bytes())
        }
    }
}

impl From<&[u8]> for ByteKey {
    fn from(b: &[u8]) -> Self {
        Self::new(b)
    }
}

impl From<Box<[u8]>> for ByteKey {
    fn from(b: Box<[u8]>) -> Self {
        Self::from_box(b)
    }
}

impl From<Vec<u8>> for ByteKey {
    fn from(b: Vec<u8>) -> Self {
        Self::from_box(b.into_boxed_slice())
    }
}

impl PartialEq for ByteKey {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        if self.is_inline() {
            // A key is inline exactly when it is short, and the unused inline
            // bytes are zero, so two inline keys are equal when their words
            // are; an inline key never equals a (longer) heap key.
            // SAFETY: every byte of `Repr` is initialised in both forms.
            return unsafe { self.0.words == other.0.words };
        }
        !other.is_inline() && bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for ByteKey {}

impl Hash for ByteKey {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<ByteStr> for ByteKey {
    #[inline(always)]
    fn borrow(&self) -> &ByteStr {
        self.as_str()
    }
}

impl Deref for ByteKey {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ByteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::hash::SeededState;
    use std::hash::BuildHasher;

    #[test]
    fn eq_matches_slices_for_every_length_and_differing_byte() {
        for n in 0..=48usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            assert!(bytes_eq(&a, &a.clone()), "len {n}");
            for at in 0..n {
                for flip in [1u8, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= flip;
                    assert!(!bytes_eq(&a, &b), "len {n}, byte {at} differs");
                }
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!bytes_eq(&a, &longer) && !bytes_eq(&longer, &a), "len {n} vs {}", n + 1);
        }
    }

    #[test]
    fn short_keys_live_inline_and_long_ones_on_the_heap() {
        for n in 0..=40usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(29).wrapping_add(1)).collect();
            let k = ByteKey::from(&bytes[..]);
            assert_eq!(k.is_stored_inline(), n <= INLINE_MAX, "len {n}");
            assert_eq!(k.as_bytes(), &bytes[..]);
            let c = k.clone();
            assert_eq!(c.as_bytes(), &bytes[..]);
            assert!(c == k);
            assert_eq!(ByteKey::from(bytes.clone()).as_bytes(), &bytes[..]);
            assert_eq!(ByteKey::from(bytes.clone().into_boxed_slice()), k);
            // A key differing in any byte, or one byte longer, is not equal.
            for at in 0..n {
                let mut other = bytes.clone();
                other[at] ^= 0x40;
                assert!(ByteKey::from(other) != k, "len {n}, byte {at}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(ByteKey::from(longer) != k, "len {n} vs {}", n + 1);
        }
        assert_eq!(std::mem::size_of::<ByteKey>(), 16);
    }

    #[test]
    fn copy_bytes_copies_every_length() {
        for n in 0..=130usize {
            let src: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(13).wrapping_add(7)).collect();
            let mut dst = vec![0xEEu8; n + 2];
            copy_bytes(&mut dst[1..n + 1], &src);
            assert_eq!(&dst[1..n + 1], &src[..], "len {n}");
            assert_eq!((dst[0], dst[n + 1]), (0xEE, 0xEE), "len {n}: wrote outside");
        }
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn copy_bytes_refuses_different_lengths() {
        copy_bytes(&mut [0u8; 3], &[1, 2]);
    }

    #[test]
    fn owned_and_borrowed_agree_on_hash_and_eq() {
        let s = SeededState::with_seed(7);
        for key in [&b""[..], b"a", b"user:1", b"0123456789abcdef", b"a key longer than thirty-two bytes!"] {
            let owned = ByteKey::from(key);
            assert_eq!(s.hash_one(&owned), s.hash_one(ByteStr::new(key)));
            assert_eq!(owned.borrow() as &ByteStr, ByteStr::new(key));
            assert_eq!(&*owned, key);
        }
        let mut m = std::collections::HashMap::with_hasher(s);
        m.insert(ByteKey::from(&b"k1"[..]), 1);
        assert_eq!(m.get(ByteStr::new(b"k1")), Some(&1));
        assert_eq!(m.get(ByteStr::new(b"k2")), None);
    }
}
