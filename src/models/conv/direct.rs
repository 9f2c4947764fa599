//! Per-sample weight gradients of a convolution computed directly from the input and the output
//! gradient, with no im2col matrix: an AVX-512 kernel for CPU f32 tensors.
//!
//! For example i, with a_pad the zero-padded input, s the stride and d the dilation,
//!
//!   ∇W_i[o, c, p, q] = Σ_{y < h_o, x < w_o} g[i, o, y, x] · a_pad[i, c, s_h·y + d_h·p, s_w·x + d_w·q]
//!
//! (the per-sample form of the weight gradient, as in Opacus `grad_sample/conv.py`, which gets it
//! as g_i · unfold(a_i)). The im2col route copies every input element k_h·k_w/(s_h·s_w) times
//! before the product; on the DP CNN's layers that copy and the small batched products cost more
//! than the multiply-adds themselves. Here the output channels sit in vector lanes (16 per
//! register), g_i is transposed once to `[position][channel]`, and each register accumulates
//! a run of kernel offsets q against broadcast input values read straight from the padded input;
//! the result, formed as `[c, p, q][channel]`, is transposed 16 × 16 at a time into place.
//! The sums run over positions in row-major order with fused multiply-adds, so results equal the
//! im2col product up to float summation order (unit tests against it and against autograd).

use tch::{Device, Kind, Tensor};

/// Kernel offsets q per register tile (accumulators per output-channel register).
const Q_TILE: usize = 4;

/// Whether [`per_sample_weight_grads`] runs for these tensors: CPU, f32 and a CPU with AVX-512F.
pub fn available(a: &Tensor, g: &Tensor) -> bool {
    let cpu_f32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    cpu_f32(a) && cpu_f32(g) && crate::simd::has_avx512f()
}

/// The geometry of one convolution, per example, in elements.
#[derive(Clone, Copy, Debug)]
struct Shape {
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    /// `co` rounded up to whole registers.
    cop: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    /// Padded height, and padded width plus room for a full q tile past the last offset.
    hp: usize,
    wpx: usize,
}

impl Shape {
    /// The geometry of `a` (`[n, C_in, H, W]`) and `g` (`[n, C_out, h_o, w_o]`) under the given
    /// convolution, checked: the kernel's raw reads rely on every one of these facts, so they are
    /// checked in release builds too (a wrong `g`, stride or width would otherwise read out of
    /// bounds). h_o must be ⌊(H + 2p_h − d_h(k_h − 1) − 1)/s_h⌋ + 1 (libtorch's output size), and
    /// likewise w_o.
    fn checked(
        sa: &[i64],
        sg: &[i64],
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
    ) -> Result<Shape, String> {
        if sa.len() != 4 || sg.len() != 4 {
            return Err(format!("input {sa:?} and output gradient {sg:?} must both be 4-D"));
        }
        if sa[0] != sg[0] {
            return Err(format!("batch sizes differ: input {sa:?}, output gradient {sg:?}"));
        }
        if sa.iter().chain(sg).any(|&v| v < 0) {
            return Err(format!("negative size in {sa:?} or {sg:?}"));
        }
        if kernel.iter().chain(&stride).chain(&dilation).any(|&v| v < 1) || padding.iter().any(|&v| v < 0) {
            return Err(format!(
                "kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be ≥ 1, padding {padding:?} ≥ 0"
            ));
        }
        let out_size = |i: usize| {
            let span = sa[2 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1;
            if span < 0 {
                0
            } else {
                span / stride[i] + 1
            }
        };
        let (ho, wo) = (out_size(0), out_size(1));
        if ho < 1 || wo < 1 || sg[2] != ho || sg[3] != wo {
            return Err(format!(
                "output gradient {sg:?} does not fit input {sa:?} under kernel {kernel:?}, stride {stride:?}, \
                 padding {padding:?}, dilation {dilation:?} (expected spatial size [{ho}, {wo}], at least 1)"
            ));
        }
        let u = |v: i64| v as usize; // every value is ≥ 0 (checked above)
        let [kh, kw] = kernel.map(u);
        Ok(Shape {
            c: u(sa[1]),
            h: u(sa[2]),
            w: u(sa[3]),
            co: u(sg[1]),
            cop: u(sg[1]).div_ceil(16) * 16,
            kh,
            kw,
            ho: u(ho),
            wo: u(wo),
            stride: stride.map(u),
            padding: padding.map(u),
            dilation: dilation.map(u),
            hp: u(sa[2] + 2 * padding[0]),
            wpx: u(sa[3] + 2 * padding[1]) + u(dilation[1]) * (Q_TILE - 1),
        })
    }
}

/// ∇W_i for every example: `[n, C_out, C_in, k_h, k_w]` from `a` (`[n, C_in, H, W]`) and `g`
/// (`[n, C_out, h_o, w_o]`).
///
/// # Panics
/// Unless [`available`], and unless the shapes agree with the convolution (see `Shape::checked`):
/// the kernel reads raw memory sized from them, so they are checked in every build.
pub fn per_sample_weight_grads(
    a: &Tensor,
    g: &Tensor,
    kernel: [i64; 2],
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
) -> Tensor {
    let (sa, sg) = (a.size(), g.size());
    let s = Shape::checked(&sa, &sg, kernel, stride, padding, dilation)
        .unwrap_or_else(|e| panic!("conv::direct::per_sample_weight_grads: {e}"));
    assert!(available(a, g), "the direct per-sample kernel needs CPU f32 tensors and AVX-512F");
    let a = a.contiguous();
    let g = g.contiguous();
    let (kh, kw) = (s.kh, s.kw);
    // Every row the kernel reads lies in the padded input (follows from the output size).
    assert!(s.stride[0] * (s.ho - 1) + s.dilation[0] * (kh - 1) < s.hp);
    assert!(s.stride[1] * (s.wo - 1) + s.dilation[1] * (kw - 1) < s.wpx - s.dilation[1] * (Q_TILE - 1));
    let n = sa[0] as usize;
    let per_out = s.co * s.c * kh * kw;
    let out = Tensor::empty([sa[0], sg[1], sa[1], kernel[0], kernel[1]], (Kind::Float, Device::Cpu));
    if n == 0 || per_out == 0 {
        return out;
    }
    let (per_a, per_g) = (s.c * s.h * s.w, s.co * s.ho * s.wo);
    // SAFETY: `a`, `g` and `out` are contiguous f32 CPU tensors of n·per_a, n·per_g and
    // n·per_out elements, alive for this whole function; `out` is written only through this slice.
    let (a_s, g_s, out_s) = unsafe {
        (
            std::slice::from_raw_parts(a.data_ptr() as *const f32, n * per_a),
            std::slice::from_raw_parts(g.data_ptr() as *const f32, n * per_g),
            std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n * per_out),
        )
    };
    crate::parallel::for_each_chunk_mut(out_s, per_out, |i, o| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` checked AVX-512F; the slices have the sizes `s` describes.
        unsafe {
            example(&s, &a_s[i * per_a..(i + 1) * per_a], &g_s[i * per_g..(i + 1) * per_g], o)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (i, o, a_s, g_s);
    });
    out
}

/// ∇W_i of one example into `out` (`[C_out, C_in, k_h, k_w]`).
///
/// # Safety
/// The CPU must support AVX-512F; `a`, `g` and `out` hold one example's input, output gradient
/// and weight gradient with the sizes `s` describes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn example(s: &Shape, a: &[f32], g: &[f32], out: &mut [f32]) {
    // Zero-padded input, rows of wpx floats (the extra columns keep full q tiles in bounds).
    let mut ap = vec![0f32; s.c * s.hp * s.wpx];
    for c in 0..s.c {
        for y in 0..s.h {
            let dst = (c * s.hp + y + s.padding[0]) * s.wpx + s.padding[1];
            ap[dst..dst + s.w].copy_from_slice(&a[(c * s.h + y) * s.w..(c * s.h + y + 1) * s.w]);
        }
    }
    // g transposed to [position][channel], channels zero-padded to whole registers.
    let l = s.ho * s.wo;
    let mut gt = vec![0f32; l * s.cop];
    for o in 0..s.co {
        for (p, &v) in g[o * l..(o + 1) * l].iter().enumerate() {
            gt[p * s.cop + o] = v;
        }
    }
    // ∇W_iᵀ as [c·k_h·k_w][channel], written a register at a time, then transposed into `out`.
    let k = s.c * s.kh * s.kw;
    let mut wt = vec![0f32; k * s.cop];
    let mut o0 = 0;
    while o0 < s.cop {
        // Two channel registers per tile where there are two left, else one.
        if s.cop - o0 >= 32 {
            // SAFETY: as for `example`; o0 + 32 ≤ cop.
            unsafe { channel_block::<2>(s, &ap, &gt, o0, &mut wt) };
            o0 += 32;
        } else {
            // SAFETY: as above; o0 + 16 ≤ cop.
            unsafe { channel_block::<1>(s, &ap, &gt, o0, &mut wt) };
            o0 += 16;
        }
    }
    transpose_into(&wt, k, s.cop, s.co, out);
}

/// `out[o·k + j] = wt[j·cop + o]` for o < `co`, j < `k`: 16 × 16 register transposes, scalar at
/// the edges.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose_into(wt: &[f32], k: usize, cop: usize, co: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let k16 = k / 16 * 16;
    for o0 in (0..cop).step_by(16) {
        let full = o0 + 16 <= co;
        for j0 in (0..k16).step_by(16) {
            // SAFETY: rows j0..j0+16 < k of `wt` have cop ≥ o0 + 16 floats each.
            let rows: [__m512i; 16] = std::array::from_fn(|t| unsafe {
                _mm512_loadu_si512(wt.as_ptr().add((j0 + t) * cop + o0) as *const __m512i)
            });
            let cols = crate::simd::transpose16(&rows);
            for (l, v) in cols.iter().enumerate() {
                let o = o0 + l;
                if full || o < co {
                    // SAFETY: o < co and j0 + 16 ≤ k, inside `out` (co·k floats).
                    unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(o * k + j0) as *mut __m512i, *v) };
                }
            }
        }
        for o in o0..(o0 + 16).min(co) {
            for j in k16..k {
                out[o * k + j] = wt[j * cop + o];
            }
        }
    }
}

/// Output channels o0 .. o0 + 16·R for every (c, p, q), into `wt` (`[c·k_h·k_w][cop]`).
///
/// # Safety
/// As for [`example`], with o0 + 16·R ≤ cop and `wt` of c·k_h·k_w·cop floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn channel_block<const R: usize>(s: &Shape, ap: &[f32], gt: &[f32], o0: usize, wt: &mut [f32]) {
    use std::arch::x86_64::*;
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    for c in 0..s.c {
        for p in 0..s.kh {
            for q0 in (0..s.kw).step_by(Q_TILE) {
                let mut acc = [[_mm512_setzero_ps(); Q_TILE]; R];
                for y in 0..s.ho {
                    // SAFETY: row (c, sh·y + dh·p) < hp exists (definition of h_o); within it the
                    // reads reach sw·(wo − 1) + dw·(q0 + Q_TILE − 1) < wpx; gt rows y·wo + x < l and
                    // channels o0 + 16·R ≤ cop.
                    let row = unsafe { ap.as_ptr().add((c * s.hp + sh * y + dh * p) * s.wpx + dw * q0) };
                    let grow = unsafe { gt.as_ptr().add(y * s.wo * s.cop + o0) };
                    for x in 0..s.wo {
                        let gv: [__m512; R] =
                            std::array::from_fn(|r| unsafe { _mm512_loadu_ps(grow.add(x * s.cop + 16 * r)) });
                        let base = unsafe { row.add(sw * x) };
                        for j in 0..Q_TILE {
                            let av = _mm512_set1_ps(unsafe { *base.add(dw * j) });
                            for (accr, gvr) in acc.iter_mut().zip(&gv) {
                                accr[j] = _mm512_fmadd_ps(*gvr, av, accr[j]);
                            }
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate() {
                    for (j, v) in accr.iter().enumerate().take(s.kw - q0) {
                        let row = (c * s.kh + p) * s.kw + q0 + j;
                        // SAFETY: row < c·k_h·k_w and o0 + 16·(r + 1) ≤ cop: inside `wt`.
                        unsafe { _mm512_storeu_ps(wt.as_mut_ptr().add(row * s.cop + o0 + 16 * r), *v) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layer::test_randn as randn;

    /// The im2col reference: per example g_i (C_out × L) times unfold(a_i) (L × C_in·k²).
    fn reference(
        a: &Tensor,
        g: &Tensor,
        k: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
    ) -> Tensor {
        let n = a.size()[0];
        let cols = a.im2col(k, dilation, padding, stride); // [n, C·k², L]
        let gs = g.size();
        let g3 = g.reshape([n, gs[1], -1]);
        g3.bmm(&cols.transpose(1, 2)).reshape([n, gs[1], a.size()[1], k[0], k[1]])
    }

    #[test]
    fn shapes_the_kernel_relies_on_are_checked() {
        let ok = Shape::checked(&[3, 1, 28, 28], &[3, 16, 14, 14], [8, 8], [2, 2], [3, 3], [1, 1]);
        assert!(ok.is_ok(), "{ok:?}");
        type Case<'a> = (&'a [i64], &'a [i64], [i64; 2], &'a str);
        let cases: [Case; 6] = [
            (&[3, 1, 28, 28], &[3, 16, 15, 14], [2, 2], "does not fit"), // h_o too large
            (&[3, 1, 28, 28], &[3, 16, 14, 15], [2, 2], "does not fit"), // w_o too large
            (&[3, 1, 28, 28], &[2, 16, 14, 14], [2, 2], "batch sizes differ"),
            (&[3, 1, 28], &[3, 16, 14, 14], [2, 2], "4-D"),
            (&[3, 1, 28, 28], &[3, 16, 14, 14], [0, 2], "must be ≥ 1"),
            (&[3, 1, 4, 4], &[3, 16, 0, 0], [2, 2], "at least 1"), // kernel larger than the input
        ];
        for (sa, sg, stride, want) in cases {
            let e = Shape::checked(sa, sg, [8, 8], stride, [3, 3], [1, 1]).unwrap_err();
            assert!(e.contains(want), "{sa:?} {sg:?} {stride:?}: {e}");
        }
    }

    /// The public entry refuses a mismatched output gradient before touching memory, on any CPU
    /// (the check comes before the AVX-512 one) and in release builds.
    #[test]
    #[should_panic(expected = "does not fit input")]
    fn a_mismatched_gradient_panics_instead_of_reading_out_of_bounds() {
        let a = Tensor::zeros([2, 3, 9, 9], (Kind::Float, Device::Cpu));
        let g = Tensor::zeros([2, 4, 9, 9], (Kind::Float, Device::Cpu)); // 7 × 7 is right for k = 3
        let _ = per_sample_weight_grads(&a, &g, [3, 3], [1, 1], [0, 0], [1, 1]);
    }

    #[test]
    fn matches_the_im2col_product() {
        crate::require!(Avx512f);
        // (n, C_in, H, W, C_out, k, stride, padding, dilation): the DP CNN's two layers, channel
        // counts that are not whole registers, a q tail, padding and dilation.
        type Case = (i64, i64, i64, i64, i64, [i64; 2], [i64; 2], [i64; 2], [i64; 2]);
        let cases: [Case; 6] = [
            (3, 1, 28, 28, 16, [8, 8], [2, 2], [3, 3], [1, 1]),
            (3, 16, 13, 13, 32, [4, 4], [2, 2], [0, 0], [1, 1]),
            (2, 3, 9, 11, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
            (2, 4, 10, 10, 40, [3, 2], [2, 1], [1, 0], [1, 2]),
            (2, 2, 12, 12, 17, [5, 5], [1, 1], [2, 2], [2, 2]),
            (1, 64, 7, 7, 48, [1, 1], [2, 2], [0, 0], [1, 1]),
        ];
        for (seed, (n, c, h, w, co, k, s, p, d)) in cases.into_iter().enumerate() {
            let ho = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
            let wo = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
            let a = randn(&[n, c, h, w], 2 * seed as u64);
            let g = randn(&[n, co, ho, wo], 2 * seed as u64 + 1);
            let want = reference(&a, &g, k, s, p, d);
            let got = per_sample_weight_grads(&a, &g, k, s, p, d);
            let tol = 1e-5 * want.abs().max().double_value(&[]);
            let diff = (&got - &want).abs().max().double_value(&[]);
            assert!(diff <= tol, "case {seed}: max diff {diff} > {tol}");
        }
    }
}
