//! AVX-512 building blocks shared by the hand-vectorised kernels (the noise keystream in
//! [`crate::dpsgd::keystream`], the direct per-sample convolution gradients in
//! [`crate::models::conv::direct`]). Callers check for AVX-512F at run time ([`has_avx512f`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether this CPU has AVX-512F, the feature every kernel here needs (std caches the answer).
pub fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The transpose of a 16 × 16 matrix of 32-bit values given as 16 row registers: element j of
/// row i becomes element i of row j.
///
/// After 32- and 64-bit unpacks within each group g of four rows, `b[g][j]` holds in its 128-bit
/// lane L the elements 4L + j of rows 4g..4g+3; a 4 × 4 transpose of 128-bit lanes per j then
/// gathers column 4L + j into one register (64 shuffles in all).
///
/// # Safety
/// Callable only where AVX-512F is enabled (from another `avx512f` function, or in `unsafe` after
/// checking the CPU).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn transpose16(x: &[__m512i; 16]) -> [__m512i; 16] {
    let b: [[__m512i; 4]; 4] = std::array::from_fn(|g| {
        let r = &x[4 * g..4 * g + 4];
        let a0 = _mm512_unpacklo_epi32(r[0], r[1]);
        let a1 = _mm512_unpackhi_epi32(r[0], r[1]);
        let a2 = _mm512_unpacklo_epi32(r[2], r[3]);
        let a3 = _mm512_unpackhi_epi32(r[2], r[3]);
        [
            _mm512_unpacklo_epi64(a0, a2),
            _mm512_unpackhi_epi64(a0, a2),
            _mm512_unpacklo_epi64(a1, a3),
            _mm512_unpackhi_epi64(a1, a3),
        ]
    });
    let mut out = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let [b0, b1, b2, b3] = b.map(|bg| bg[j]);
        let c0 = _mm512_shuffle_i32x4::<0x44>(b0, b1);
        let c1 = _mm512_shuffle_i32x4::<0xEE>(b0, b1);
        let c2 = _mm512_shuffle_i32x4::<0x44>(b2, b3);
        let c3 = _mm512_shuffle_i32x4::<0xEE>(b2, b3);
        out[j] = _mm512_shuffle_i32x4::<0x88>(c0, c2);
        out[4 + j] = _mm512_shuffle_i32x4::<0xDD>(c0, c2);
        out[8 + j] = _mm512_shuffle_i32x4::<0x88>(c1, c3);
        out[12 + j] = _mm512_shuffle_i32x4::<0xDD>(c1, c3);
    }
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn transposes() {
        crate::require!(Avx512f);
        let m: Vec<u32> = (0..256).collect();
        // SAFETY: the CPU has AVX-512F (checked above); every load and store covers 16 u32s of a
        // 256-element buffer.
        unsafe {
            let rows: [__m512i; 16] =
                std::array::from_fn(|i| _mm512_loadu_si512(m.as_ptr().add(16 * i) as *const __m512i));
            let t = transpose16(&rows);
            let mut got = vec![0u32; 256];
            for (j, v) in t.iter().enumerate() {
                _mm512_storeu_si512(got.as_mut_ptr().add(16 * j) as *mut __m512i, *v);
            }
            for i in 0..16 {
                for j in 0..16 {
                    assert_eq!(got[16 * j + i], m[16 * i + j]);
                }
            }
        }
    }
}
