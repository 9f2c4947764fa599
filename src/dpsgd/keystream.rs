//! The ChaCha20 keystream behind the privacy noise, read as 32-bit words, generated 16 blocks at
//! a time with AVX-512 where the CPU has it.
//!
//! The words are exactly those of `rand_chacha::ChaCha20Rng` keyed with the same 32 bytes and
//! set to the same stream: ChaCha20 (Bernstein 2008, "ChaCha, a variant of Salsa20"; 20 rounds)
//! with the state `"expand 32-byte k"`, the key as eight little-endian words, a 64-bit block
//! counter in words 12–13 starting at 0 and the 64-bit stream id in words 14–15. `next_u32` reads
//! the next word, `next_u64` the next two (low word first) and [`Keystream::fill_words`] the next
//! `n`, as `ChaCha20Rng`'s `next_u32`, `next_u64` and `fill_bytes` do. Unit tests compare all three,
//! interleaved, with `ChaCha20Rng` over random keys and streams, and check the first block of the
//! all-zero key against the published test vector.
//!
//! Why not `ChaCha20Rng` itself: its generator always takes the crate's AVX2 path (4 blocks per
//! call; the `chacha20` crate's AVX-512 backend serves only the cipher), ≈ 1.7 ns per word here.
//! With AVX-512 the 16 blocks sit word-major in 16 registers (lane b holds block b), every
//! rotation is one `vprold`, and a 16 × 16 transpose ([`crate::simd::transpose16`]) restores the
//! block order. Without AVX-512 this
//! type simply wraps `ChaCha20Rng`.

use crate::rng::ChaCha20Rng;
use rand::{Rng, SeedableRng};

/// Words per ChaCha20 block.
const BLOCK_WORDS: usize = 16;
/// Blocks generated per AVX-512 call.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const PAR_BLOCKS: usize = 16;
/// Words per AVX-512 call.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const PAR_WORDS: usize = BLOCK_WORDS * PAR_BLOCKS;

/// A ChaCha20 keystream for one (key, stream) pair, from block 0.
#[derive(Debug, Clone)]
pub struct Keystream {
    inner: Inner,
}

// The wide variant is large (1 KiB of buffered words) on purpose: a keystream lives on the stack of
// one noise chunk, and boxing the buffer would put a heap allocation in that loop.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Inner {
    /// AVX-512: `buf[pos..]` holds the not yet read words of the blocks before `next_block`.
    #[cfg(target_arch = "x86_64")]
    Wide {
        key: [u32; 8],
        stream: u64,
        next_block: u64,
        buf: [u32; PAR_WORDS],
        pos: usize,
    },
    Portable(ChaCha20Rng),
}

impl Keystream {
    /// The keystream of `key` (the 32-byte seed of `ChaCha20Rng::from_seed`) and stream id `stream`.
    pub fn new(key: [u8; 32], stream: u64) -> Self {
        Self::with_backend(key, stream, crate::simd::has_avx512f())
    }

    /// The same keystream from `ChaCha20Rng` itself, whatever the CPU (the reference in tests).
    pub fn portable(key: [u8; 32], stream: u64) -> Self {
        Self::with_backend(key, stream, false)
    }

    fn with_backend(key: [u8; 32], stream: u64, wide: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if wide {
            return Keystream {
                inner: Inner::Wide {
                    key: key_words(&key),
                    stream,
                    next_block: 0,
                    buf: [0; PAR_WORDS],
                    pos: PAR_WORDS,
                },
            };
        }
        let _ = wide;
        let mut r = ChaCha20Rng::from_seed(key);
        r.set_stream(stream);
        Keystream { inner: Inner::Portable(r) }
    }

    /// Fill `out` with the next `out.len()` words.
    pub fn fill_words(&mut self, out: &mut [u32]) {
        match &mut self.inner {
            #[cfg(target_arch = "x86_64")]
            Inner::Wide { key, stream, next_block, buf, pos } => {
                let take = (PAR_WORDS - *pos).min(out.len());
                out[..take].copy_from_slice(&buf[*pos..*pos + take]);
                *pos += take;
                let mut rest = &mut out[take..];
                while rest.len() >= PAR_WORDS {
                    let (head, tail) = rest.split_at_mut(PAR_WORDS);
                    // SAFETY: `Wide` is only built when the CPU has AVX-512F; `head` has PAR_WORDS words.
                    unsafe { blocks16(key, *stream, *next_block, head.try_into().expect("PAR_WORDS words")) };
                    *next_block = next_block.wrapping_add(PAR_BLOCKS as u64);
                    rest = tail;
                }
                if !rest.is_empty() {
                    // SAFETY: as above.
                    unsafe { blocks16(key, *stream, *next_block, buf) };
                    *next_block = next_block.wrapping_add(PAR_BLOCKS as u64);
                    rest.copy_from_slice(&buf[..rest.len()]);
                    *pos = rest.len();
                }
            }
            Inner::Portable(r) => {
                // SAFETY: any byte pattern is a valid u32; the byte view covers exactly `out`.
                let bytes =
                    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, 4 * out.len()) };
                r.fill_bytes(bytes);
                for w in out.iter_mut() {
                    *w = u32::from_le(*w);
                }
            }
        }
    }

    /// The next word.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        match &mut self.inner {
            #[cfg(target_arch = "x86_64")]
            Inner::Wide { pos, buf, .. } if *pos < PAR_WORDS => {
                *pos += 1;
                buf[*pos - 1]
            }
            Inner::Portable(r) => r.next_u32(),
            #[cfg(target_arch = "x86_64")]
            Inner::Wide { .. } => {
                let mut w = [0u32; 1];
                self.fill_words(&mut w);
                w[0]
            }
        }
    }

    /// The next two words, the first as the low half.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        lo | (self.next_u32() as u64) << 32
    }
}

/// The key as ChaCha20's eight little-endian state words.
#[cfg(target_arch = "x86_64")]
fn key_words(key: &[u8; 32]) -> [u32; 8] {
    std::array::from_fn(|i| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]))
}

/// ChaCha20's constants, "expand 32-byte k" as little-endian words.
#[cfg(target_arch = "x86_64")]
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Blocks `counter .. counter + 16` of (key, stream), in order, into `out`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn blocks16(key: &[u32; 8], stream: u64, counter: u64, out: &mut [u32; PAR_WORDS]) {
    use std::arch::x86_64::*;
    // x[w] lane b = word w of block counter + b.
    let mut x = [_mm512_setzero_si512(); 16];
    for (w, &c) in SIGMA.iter().enumerate() {
        x[w] = _mm512_set1_epi32(c as i32);
    }
    for (w, &k) in key.iter().enumerate() {
        x[4 + w] = _mm512_set1_epi32(k as i32);
    }
    let base = _mm512_set1_epi32(counter as u32 as i32);
    let lo = _mm512_add_epi32(base, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    // The 64-bit counter carries into word 13 in the lanes where the low word wrapped.
    let carry = _mm512_cmplt_epu32_mask(lo, base);
    let hi = _mm512_set1_epi32((counter >> 32) as u32 as i32);
    x[12] = lo;
    x[13] = _mm512_mask_add_epi32(hi, carry, hi, _mm512_set1_epi32(1));
    x[14] = _mm512_set1_epi32(stream as u32 as i32);
    x[15] = _mm512_set1_epi32((stream >> 32) as u32 as i32);
    let input = x;

    macro_rules! qr {
        ($a:expr, $b:expr, $c:expr, $d:expr) => {
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[$b], x[$c]));
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[$b], x[$c]));
        };
    }
    for _ in 0..10 {
        qr!(0, 4, 8, 12);
        qr!(1, 5, 9, 13);
        qr!(2, 6, 10, 14);
        qr!(3, 7, 11, 15);
        qr!(0, 5, 10, 15);
        qr!(1, 6, 11, 12);
        qr!(2, 7, 8, 13);
        qr!(3, 4, 9, 14);
    }
    for (v, i) in x.iter_mut().zip(input) {
        *v = _mm512_add_epi32(*v, i);
    }

    // Transpose to block order: row w (word w of every block) becomes column w.
    let blocks = crate::simd::transpose16(&x);
    let dst = out.as_mut_ptr() as *mut __m512i;
    for (b, v) in blocks.into_iter().enumerate() {
        // SAFETY: block b < 16 lies inside `out` (PAR_WORDS = 16 blocks of 16 words).
        unsafe { _mm512_storeu_si512(dst.add(b), v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Read `r` and `k` the same way (a mix of bulk fills of odd sizes and single reads) and
    /// compare.
    fn compare(key: [u8; 32], stream: u64, k: &mut Keystream) {
        let mut r = ChaCha20Rng::from_seed(key);
        r.set_stream(stream);
        let mut plan = crate::rng::stream(Some(stream), crate::rng::Stream::Data);
        for _ in 0..200 {
            match plan.random_range(0..4) {
                0 => assert_eq!(k.next_u32(), r.next_u32()),
                1 => assert_eq!(k.next_u64(), r.next_u64()),
                _ => {
                    let n = plan.random_range(0..700);
                    let mut a = vec![0u32; n];
                    k.fill_words(&mut a);
                    let mut bytes = vec![0u8; 4 * n];
                    r.fill_bytes(&mut bytes);
                    let b: Vec<u32> =
                        bytes.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
                    assert_eq!(a, b);
                }
            }
        }
    }

    /// Keys and streams for the comparisons: zero, one, a large and the largest stream.
    fn cases() -> Vec<([u8; 32], u64)> {
        let mut seeds = crate::rng::stream(Some(9), crate::rng::Stream::Data);
        [0u64, 1, (7 << 24) | 3, u64::MAX]
            .into_iter()
            .map(|stream| {
                let mut key = [0u8; 32];
                seeds.fill_bytes(&mut key);
                (key, stream)
            })
            .collect()
    }

    #[test]
    fn portable_backend_equals_rand_chacha() {
        for (key, stream) in cases() {
            compare(key, stream, &mut Keystream::portable(key, stream));
        }
    }

    #[test]
    fn avx512_backend_equals_rand_chacha() {
        crate::require!(Avx512f);
        for (key, stream) in cases() {
            compare(key, stream, &mut Keystream::with_backend(key, stream, true));
        }
    }

    #[test]
    fn all_zero_key_matches_the_published_first_block() {
        // ChaCha20, 256-bit all-zero key, all-zero 64-bit nonce, block 0 (Bernstein's reference
        // test vector; also draft-agl-tls-chacha20poly1305, test vector 1).
        let hex = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";
        let want: Vec<u32> = (0..16)
            .map(|i| {
                u32::from_le_bytes(std::array::from_fn(|j| {
                    u8::from_str_radix(&hex[8 * i + 2 * j..8 * i + 2 * j + 2], 16).unwrap()
                }))
            })
            .collect();
        let mut got = [0u32; 16];
        Keystream::new([0; 32], 0).fill_words(&mut got);
        assert_eq!(got.to_vec(), want);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn counter_carries_into_the_high_word() {
        // Blocks around 2³²: the wide path adds the lane offset to the low word and must carry.
        crate::require!(Avx512f);
        let key = [3u8; 32];
        let start = (1u64 << 32) - 5;
        let mut r = ChaCha20Rng::from_seed(key);
        r.set_stream(2);
        r.set_word_pos(start as u128 * BLOCK_WORDS as u128);
        let mut out = [0u32; PAR_WORDS];
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { blocks16(&key_words(&key), 2, start, &mut out) };
        let want: Vec<u32> = (0..PAR_WORDS).map(|_| r.next_u32()).collect();
        assert_eq!(out.to_vec(), want);
    }
}
