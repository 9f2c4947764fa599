//! 2-D convolution (groups = 1) and its grad sampler (Opacus `grad_sample/conv.py`).
//!
//! With the im2col matrix A_i (`[L, C_in·k_h·k_w]`, L output positions) and g_i (`[C_out, L]`):
//! - per-sample: ∇W_i = g_i A_i, ∇b_i = Σ_L g_i;
//! - norm without keeping per-sample gradients ([`GradSampler::ghost_sq_norm`]), by whichever of
//!   three exact routes is cheapest for the shapes: the ghost norm ‖∇W_i‖² = ⟨g_iᵀ g_i, A_i A_iᵀ⟩
//!   (L×L Gram matrices, Bu et al. 2023) with A_i A_iᵀ from im2col, the same with A_i A_iᵀ summed
//!   from shifted blocks of the padded input's channel Gram matrix (no im2col), or ‖g_i A_i‖²
//!   with g_i A_i formed block by block in scratch memory and dropped;
//! - clipped sum: Σ_i c_i g_i A_i as one `[C_out, nL] × [nL, C_in k²]` product (accumulated over
//!   blocks of examples), or for small C_in k² as the weight gradient of the convolution for the
//!   output gradient c ⊙ g, one convolution without im2col ([`Conv2d::weight_grad`]);
//! - per-sample gradients by the direct AVX-512 kernel of [`direct`] (no im2col) where the CPU
//!   has it and a per-sample gradient has at most [`DIRECT_MAX_FLOATS`] elements; otherwise, with a
//!   single input channel (the first layer on grey images), as one grouped convolution, else by
//!   im2col + `bmm`.
//!
//! Whether the engine keeps the per-sample gradients (and takes the clipped sum Σ_i c_i ∇W_i from
//! them, with no second product) or only their norms ([`GradSampler::ghost_is_cheaper`]) is a
//! memory rule: keep them when a per-sample gradient is at most [`KEEP_RATIO`] times the size of
//! the per-sample input activation, so that the kept gradients cost about as much memory as the
//! activations the forward pass stores anyway.
//!
//! im2col is never formed for the whole batch: blocks of examples (at most [`BLOCK_FLOATS`]
//! floats of columns) are padded and unfolded (an `as_strided` view plus one copy, laid out
//! `[C·k_h·k_w, b, L]` so that the copy runs along output rows) into one scratch buffer per thread
//! that is reused across layers and steps, so no per-step allocation or page faulting of the
//! im2col memory happens.

pub mod direct;
mod im2col;
mod norms;

use super::layer::{bcast, GradSampler};
use norms::NormRoute;
use tch::{Kind, Tensor};

/// Largest im2col block, in elements (64 MiB of f32): every ResNet18 layer at batch 32 fits in one
/// block, so its clipped sum is one large GEMM (W3 ghost step 807 / 781 / 634 ms with 4 / 16 / 64
/// MiB blocks, one run each; peak 975.5 MiB against 760.6 MiB non-private). The buffer is kept per
/// thread and reused.
pub const BLOCK_FLOATS: i64 = 1 << 24;
/// Largest per-sample gradient (C_out·C_in·k_h·k_w floats) formed by the direct AVX-512 kernel
/// ([`direct`]) rather than im2col + `bmm` / the grouped convolution. Measured on 2 threads
/// (`per_sample_weight_grads` against the previous route): the DP CNN's conv1 0.80 vs 1.54 ms and
/// conv2 1.12 vs 2.41 ms at batch 256; ResNet18 at batch 32, 64 channels 12.0 vs 14.6 ms, 128
/// channels 12.2 vs 13.5 ms (147 k floats), but 256 channels 29.7 vs 14.1 ms (590 k floats).
pub const DIRECT_MAX_FLOATS: i64 = 1 << 18;
/// Cost of one element of the strided im2col copy, in matmul multiply-adds (measured, CPU).
pub const COPY_COST: i64 = 8;
/// Cost of one element of the shifted-Gram strided sum, in matmul multiply-adds (measured, CPU).
pub const SHIFT_SUM_COST: i64 = 150;
/// Largest C_in·k² for which the clipped sum is one weight-gradient convolution.
pub const WEIGHT_GRAD_MAX_K: i64 = 256;
/// Keep materialised per-sample gradients when C_out·C_in·k² ≤ KEEP_RATIO · C_in·H·W.
pub const KEEP_RATIO: i64 = 2;
/// Also keep them when forming them costs at most this many times the cheapest norm route
/// (measured, 2 threads: at ratio 1.0, ResNet18's 128-channel 3×3 layers took 19 instead of
/// 30 ms for norm + clipped sum; at 1.1, the DP CNN's conv2 2.8 instead of 4.7 ms; at 4.2, the
/// 256-channel layers 42 instead of 16 ms) ...
pub const KEEP_COST_FACTOR: i64 = 2;
/// ... and the batch's per-sample gradients of the layer take at most this many floats (32 MiB).
pub const KEEP_MAX_FLOATS: i64 = 1 << 23;

/// Conv2d with square stride/padding/dilation per axis. `weight` is `[C_out, C_in, k_h, k_w]`.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
}

/// Shapes of one convolution applied to a batch.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: i64,
    c: i64,
    h: i64,
    w: i64,
    kh: i64,
    kw: i64,
    ho: i64,
    wo: i64,
    /// Padded input height and width.
    hp: i64,
    wp: i64,
}

impl Geometry {
    /// Columns per example: C·k_h·k_w.
    fn k(&self) -> i64 {
        self.c * self.kh * self.kw
    }
    /// Output positions L.
    fn l(&self) -> i64 {
        self.ho * self.wo
    }
}

impl Conv2d {
    fn geometry(&self, a: &Tensor) -> Geometry {
        let s = a.size();
        let ws = self.weight.size();
        let (kh, kw) = (ws[2], ws[3]);
        let hp = s[2] + 2 * self.padding[0];
        let wp = s[3] + 2 * self.padding[1];
        let ho = (hp - self.dilation[0] * (kh - 1) - 1) / self.stride[0] + 1;
        let wo = (wp - self.dilation[1] * (kw - 1) - 1) / self.stride[1] + 1;
        Geometry { n: s[0], c: s[1], h: s[2], w: s[3], kh, kw, ho, wo, hp, wp }
    }
    /// Σ_i ∇W_i for output gradient `g` (`[n, C_out, h_o, w_o]`): the weight gradient
    /// dW[o, c, p, q] = Σ_{i, y, x} g[i, o, y, x] · a_pad[i, c, s·y + d·p, s·x + d·q]
    /// (s stride, d dilation), which is the convolution of a_padᵀ (`[C_in, n, H, W]`, examples as
    /// channels) with gᵀ (`[C_out, n, h_o, w_o]`) at stride d and dilation s, cut to k_h × k_w and
    /// transposed to `[C_out, C_in, k_h, k_w]`. Equals `(g reshaped)ᵀ · im2col(a)` up to float
    /// summation order, without materialising im2col (≈ 2.5× faster for the CNN's second layer).
    fn weight_grad(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let ws = self.weight.size();
        let out = a.transpose(0, 1).conv2d(
            &g.transpose(0, 1),
            None::<Tensor>,
            self.dilation,
            self.padding,
            self.stride,
            1,
        );
        out.narrow(2, 0, ws[2]).narrow(3, 0, ws[3]).transpose(0, 1)
    }

    /// Per-sample weight gradients for one input channel: every example's [`Self::weight_grad`] at
    /// once as a grouped convolution (group i = example i: input channel i of a viewed as
    /// `[1, n, H, W]`, filters g_i), cut to k_h × k_w; ≈ 1.4× faster than im2col + bmm for the
    /// CNN's conv1.
    fn grad_sample_grouped(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let ws = self.weight.size();
        let (sa, gs) = (a.size(), g.size());
        let n = sa[0];
        let out = a.reshape([1, n, sa[2], sa[3]]).conv2d(
            &g.reshape([n * gs[1], 1, gs[2], gs[3]]),
            None::<Tensor>,
            self.dilation,
            self.padding,
            self.stride,
            n,
        );
        out.narrow(2, 0, ws[2]).narrow(3, 0, ws[3]).reshape([vec![n], ws].concat().as_slice())
    }

    fn grad_sample_blocked(&self, a: &Tensor, g: &Tensor, block_floats: i64) -> Vec<Tensor> {
        let g3 = Self::g3(g);
        let ws = self.weight.size();
        let n = g3.size()[0];
        let out = Tensor::empty([n, ws[0], ws[1] * ws[2] * ws[3]], (g.kind(), g.device()));
        self.for_blocks(a, block_floats, true, |i0, b, cols| {
            let _ = g3.narrow(0, i0, b).bmm_out(&out.narrow(0, i0, b), &cols.permute([1, 2, 0]));
        });
        let mut v = vec![out.view([vec![n], ws].concat().as_slice())];
        if self.bias.is_some() {
            v.push(g3.sum_dim_intlist(2, false, Kind::Float));
        }
        v
    }

    fn clipped_sum_blocked(&self, a: &Tensor, g: &Tensor, c: &Tensor, block_floats: i64) -> Vec<Tensor> {
        let g3 = Self::g3(g);
        let s = g3.size();
        let (co, l) = (s[1], s[2]);
        let k = self.weight.numel() as i64 / co;
        // (c ⊙ g) laid out [C_out, n, L], so that a block of examples is a [C_out, bL] matrix.
        let gc = (&g3 * bcast(c, 3)).permute([1, 0, 2]).contiguous();
        let mut w = Tensor::zeros([co, k], (g.kind(), g.device()));
        self.for_blocks(a, block_floats, false, |i0, b, cols| {
            let lhs = gc.narrow(1, i0, b).reshape([co, b * l]);
            let _ = w.addmm_(&lhs, &cols.view([k, b * l]).tr());
        });
        let mut out = vec![w.view(self.weight.size().as_slice())];
        if self.bias.is_some() {
            out.push(gc.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float));
        }
        out
    }
}

impl GradSampler for Conv2d {
    fn params(&self) -> Vec<&Tensor> {
        let mut v = vec![&self.weight];
        if let Some(b) = &self.bias {
            v.push(b);
        }
        v
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let z = x.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding, self.dilation, 1);
        (x.shallow_clone(), z)
    }

    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let n = a.size()[0];
        let ws = self.weight.size();
        let w = if self.weight.numel() as i64 <= DIRECT_MAX_FLOATS && direct::available(a, g) {
            direct::per_sample_weight_grads(a, g, [ws[2], ws[3]], self.stride, self.padding, self.dilation)
        } else if ws[1] == 1 && n > 0 {
            self.grad_sample_grouped(a, g)
        } else {
            return self.grad_sample_blocked(a, g, BLOCK_FLOATS);
        };
        let mut v = vec![w];
        if self.bias.is_some() {
            v.push(Self::g3(g).sum_dim_intlist(2, false, Kind::Float));
        }
        v
    }

    /// The cheapest of three exact routes per example, in multiply-add equivalents: g_i A_i
    /// formed in blocks (C_out·K·L + c_copy·K·L), the im2col Gram formula
    /// (L²(C_out + K) + c_copy·K·L) or the shifted channel Gram (P²C + L²C_out + c_red·k²L²),
    /// with K = C_in·k², P the padded positions and the per-element costs of the strided im2col
    /// copy (c_copy) and of the strided shifted sum (c_red) as measured against the matmul rate
    /// on a 2-core CPU ([`COPY_COST`], [`SHIFT_SUM_COST`]).
    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        match self.norm_costs(a).cheapest() {
            NormRoute::Shifted => self.shifted_gram_sq_norm(a, g),
            NormRoute::Gram => self.gram_sq_norm(a, g),
            NormRoute::Formed => self.formed_sq_norm(a, g),
        }
    }

    /// Keep the per-sample gradients (return `false`) when they are small next to the layer's input
    /// (C_out·C_in·k² ≤ [`KEEP_RATIO`]·C_in·H·W), or when forming them costs at most
    /// [`KEEP_COST_FACTOR`] times the cheapest norm route and the batch's gradients take at most
    /// [`KEEP_MAX_FLOATS`]: then the norm costs about a materialisation anyway, and keeping saves
    /// the clipped-sum product, which costs as much again.
    fn ghost_is_cheaper(&self, a: &Tensor, _g: &Tensor) -> bool {
        let s = a.size();
        let input: i64 = s[1..].iter().product();
        let per_sample = self.weight.numel() as i64;
        if per_sample <= KEEP_RATIO * input {
            return false;
        }
        let c = self.norm_costs(a);
        let best = c.formed.min(c.gram).min(c.shifted);
        !(c.formed <= KEEP_COST_FACTOR * best && s[0] * per_sample <= KEEP_MAX_FLOATS)
    }

    /// Small K = C_in·k² (≤ [`WEIGHT_GRAD_MAX_K`]): one weight-gradient convolution of c ⊙ g
    /// ([`Conv2d::weight_grad`]); otherwise the blocked im2col product. Measured on 2 threads:
    /// the DP CNN's conv2 (K = 256) 1.4 vs 3.3 ms; on ResNet18's 3×3 layers (K ≥ 576) the
    /// blocked product was faster or within 10 % in total.
    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let k = self.weight.numel() as i64 / self.weight.size()[0];
        if k > WEIGHT_GRAD_MAX_K {
            return self.clipped_sum_blocked(a, g, c, BLOCK_FLOATS);
        }
        let gc = g * bcast(c, g.dim());
        let mut out = vec![self.weight_grad(a, &gc)];
        if self.bias.is_some() {
            out.push(gc.sum_dim_intlist([0, 2, 3].as_slice(), false, Kind::Float));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layer::{sq_norms_of, test_randn as randn, weighted_sum};

    fn close(want: &Tensor, got: &Tensor) {
        assert_eq!(want.size(), got.size());
        let scale = want.abs().max().double_value(&[]).max(1e-12);
        let diff = (want - got).abs().max().double_value(&[]);
        assert!(diff <= 1e-5 * scale, "diff {diff:e} vs scale {scale:e}");
    }

    /// Per-sample gradients by autograd, one example at a time.
    fn naive(conv: &Conv2d, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let n = a.size()[0];
        let mut per: Vec<Vec<Tensor>> = conv.params().iter().map(|_| Vec::new()).collect();
        for i in 0..n {
            let (_, z) = conv.forward(&a.narrow(0, i, 1));
            let l = (z * g.narrow(0, i, 1)).sum(Kind::Float);
            let ps: Vec<&Tensor> = conv.params();
            for (v, gr) in per.iter_mut().zip(Tensor::run_backward(&[&l], &ps, false, false)) {
                v.push(gr);
            }
        }
        per.into_iter().map(|v| Tensor::stack(&v, 0)).collect()
    }

    #[test]
    fn blocked_routes_match_per_example_autograd() {
        // (C_in, C_out, k, stride, pad, dilation, bias, H): padded, strided, dilated, 1×1, with and without bias.
        let cases = [
            (3, 4, 3, 1, 1, 1, false, 7),
            (2, 5, 3, 2, 1, 1, true, 8),
            (4, 6, 1, 2, 0, 1, false, 6),
            (2, 3, 4, 2, 0, 1, true, 9),
            (3, 2, 3, 1, 2, 1, false, 5),
            (2, 3, 3, 2, 2, 2, true, 9),
        ];
        for (j, &(ci, co, k, s, p, d, bias, h)) in cases.iter().enumerate() {
            let seed = 10 * j as u64;
            let conv = Conv2d {
                weight: randn(&[co, ci, k, k], seed).set_requires_grad(true),
                bias: if bias { Some(randn(&[co], seed + 1).set_requires_grad(true)) } else { None },
                stride: [s, s],
                padding: [p, p],
                dilation: [d, d],
            };
            let n = 5;
            let a = randn(&[n, ci, h, h], seed + 2);
            let (_, z) = tch::no_grad(|| conv.forward(&a));
            let g = randn(&z.size(), seed + 3);
            let want = naive(&conv, &a, &g);
            let c = randn(&[n], seed + 4).abs();
            tch::no_grad(|| {
                // One example per block, and everything in one block.
                for bf in [1, 1 << 30] {
                    let got = conv.grad_sample_blocked(&a, &g, bf);
                    for (w, gt) in want.iter().zip(&got) {
                        close(w, gt);
                    }
                    let sq = sq_norms_of(&want);
                    close(&sq, &conv.gram_sq_norm_blocked(&a, &g, bf));
                    close(&sq, &conv.formed_sq_norm_blocked(&a, &g, bf));
                    close(&sq, &conv.shifted_gram_sq_norm_blocked(&a, &g, bf));
                    let sums = conv.clipped_sum_blocked(&a, &g, &c, bf);
                    for (w, s) in want.iter().zip(&sums) {
                        close(&weighted_sum(w, &c), s);
                    }
                }
                let u = conv.unfold(&a);
                let geo = conv.geometry(&a);
                assert_eq!(u.size(), vec![n, geo.l(), geo.k()]);
                let w2 = conv.weight.view([co, -1]);
                let direct = u.matmul(&w2.tr()).transpose(1, 2).reshape(z.size().as_slice());
                let zb = match &conv.bias {
                    Some(b) => &z - b.view([1, -1, 1, 1]),
                    None => z.shallow_clone(),
                };
                close(&zb, &direct);
            });
        }
    }

    /// The im2col reference: per-sample ∇W_i = g_i · im2col(a)_i.
    fn reference(conv: &Conv2d, a: &Tensor, g: &Tensor) -> Tensor {
        let n = a.size()[0];
        Conv2d::g3(g).bmm(&conv.unfold(a)).reshape([vec![n], conv.weight.size()].concat().as_slice())
    }

    #[test]
    fn every_per_sample_route_and_the_weight_grad_path_match_im2col() {
        let _g = tch::no_grad_guard();
        let mut r = crate::rng::stream(Some(3), crate::rng::Stream::Data);
        let mut rnd = |shape: &[i64]| {
            use rand::RngExt;
            let v: Vec<f32> =
                (0..shape.iter().product::<i64>()).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
            Tensor::from_slice(&v).reshape(shape)
        };
        for (cin, k, stride, pad, dil, hw) in [
            (1i64, 3i64, 1i64, 1i64, 1i64, 9i64),
            (1, 4, 2, 3, 2, 13),
            (3, 3, 2, 1, 2, 12),
            (2, 2, 3, 0, 1, 10),
        ] {
            let conv = Conv2d {
                weight: rnd(&[5, cin, k, k]),
                bias: Some(rnd(&[5])),
                stride: [stride; 2],
                padding: [pad; 2],
                dilation: [dil; 2],
            };
            let a = rnd(&[4, cin, hw, hw]);
            let (_, z) = conv.forward(&a);
            let g = rnd(z.size().as_slice());
            let want = reference(&conv, &a, &g);
            let got = conv.grad_sample(&a, &g);
            let scale = want.abs().max().double_value(&[]);
            assert!(
                (&got[0] - &want).abs().max().double_value(&[]) <= 1e-5 * scale,
                "per-sample grads, cin {cin} k {k} s {stride} p {pad} d {dil}"
            );
            // Each route on its own (grad_sample picks the direct kernel where the CPU has AVX-512).
            if cin == 1 {
                let grouped = conv.grad_sample_grouped(&a, &g);
                assert!(
                    (&grouped - &want).abs().max().double_value(&[]) <= 1e-5 * scale,
                    "grouped, k {k} s {stride} p {pad} d {dil}"
                );
            }
            let blocked = conv.grad_sample_blocked(&a, &g, BLOCK_FLOATS);
            assert!(
                (&blocked[0] - &want).abs().max().double_value(&[]) <= 1e-5 * scale,
                "blocked, cin {cin} k {k} s {stride} p {pad} d {dil}"
            );
            let c = Tensor::from_slice(&[0.5f32, 1.0, 0.25, 2.0]);
            let sums = conv.clipped_sum(&a, &g, &c);
            let want_sum = (&want * c.view([-1, 1, 1, 1, 1])).sum_dim_intlist(0, false, Kind::Float);
            assert!(
                (&sums[0] - &want_sum).abs().max().double_value(&[]) <= 1e-5 * scale,
                "clipped sum, cin {cin} k {k} s {stride} p {pad} d {dil}"
            );
            let want_b =
                (&g * c.view([-1, 1, 1, 1])).sum_dim_intlist([0, 2, 3].as_slice(), false, Kind::Float);
            assert!((&sums[1] - &want_b).abs().max().double_value(&[]) <= 1e-5 * scale);
        }
    }
}
