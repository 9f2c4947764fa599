//! 2-D convolution (groups = 1) and its grad sampler (Opacus `grad_sample/conv.py`).
//!
//! With the im2col matrix A_i (`[L, C_in·k_h·k_w]`, L output positions) and g_i (`[C_out, L]`):
//! - per-sample: ∇W_i = g_i A_i, ∇b_i = Σ_L g_i;
//! - ghost norm: ‖∇W_i‖² = ⟨g_iᵀ g_i, A_i A_iᵀ⟩ (L×L Gram matrices), cheaper when
//!   2L² < C_out·C_in·k² (Bu et al. 2023, "layerwise decision");
//! - clipped sum: Σ_i c_i g_i A_i, which is the weight gradient of the convolution for the output
//!   gradient c ⊙ g; computed as one convolution without im2col (see [`Conv2d::weight_grad`]).
//!
//! Per-sample gradients with a single input channel (the first layer on grey images) come from one
//! grouped convolution, which was faster than im2col + `bmm` (see [`Conv2d::grad_sample`]).
//!
//! im2col is an `as_strided` view of the (padded) input plus one copy, laid out `[n, L, C·k·k]`
//! with the same (c, kh, kw) order as `F.unfold`; this was 2–3× faster than libtorch's `im2col`.

use super::layer::{bcast, GradSampler};
use tch::{Kind, Tensor};

/// Conv2d with square stride/padding/dilation per axis. `weight` is `[C_out, C_in, k_h, k_w]`.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
}

impl Conv2d {
    /// im2col of `a` (`[n, C, H, W]`): `[n, L, C·k_h·k_w]`, contiguous.
    pub fn unfold(&self, a: &Tensor) -> Tensor {
        let ws = self.weight.size();
        let (kh, kw) = (ws[2], ws[3]);
        let [ph, pw] = self.padding;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let ap = if ph > 0 || pw > 0 { a.constant_pad_nd([pw, pw, ph, ph]) } else { a.contiguous() };
        let s = ap.size();
        let (n, c, hp, wp) = (s[0], s[1], s[2], s[3]);
        let ho = (hp - dh * (kh - 1) - 1) / sh + 1;
        let wo = (wp - dw * (kw - 1) - 1) / sw + 1;
        let v = ap.as_strided(
            [n, ho, wo, c, kh, kw],
            [c * hp * wp, sh * wp, sw, hp * wp, dh * wp, dw],
            ap.storage_offset(),
        );
        v.reshape([n, ho * wo, c * kh * kw])
    }

    /// Σ_i ∇W_i for output gradient `g` (`[n, C_out, h_o, w_o]`): the weight gradient
    /// dW[o, c, p, q] = Σ_{i, y, x} g[i, o, y, x] · a_pad[i, c, s·y + d·p, s·x + d·q]
    /// (s stride, d dilation), which is the convolution of a_padᵀ (`[C_in, n, H, W]`, examples as
    /// channels) with gᵀ (`[C_out, n, h_o, w_o]`) at stride d and dilation s, cut to k_h × k_w and
    /// transposed to `[C_out, C_in, k_h, k_w]`. Equals `(g reshaped)ᵀ · im2col(a)` up to float
    /// summation order, without materialising im2col (≈ 2.5× faster for the CNN's second layer).
    fn weight_grad(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let ws = self.weight.size();
        let out = a.transpose(0, 1).conv2d(&g.transpose(0, 1), None::<Tensor>, self.dilation, self.padding, self.stride, 1);
        out.narrow(2, 0, ws[2]).narrow(3, 0, ws[3]).transpose(0, 1)
    }

    fn g3(g: &Tensor) -> Tensor {
        let s = g.size();
        g.reshape([s[0], s[1], -1])
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
        let g3 = Self::g3(g);
        let w = if ws[1] == 1 && n > 0 {
            // One input channel: the per-sample weight_grad of every example at once as a grouped
            // convolution (group i = example i: input channel i of a viewed as [1, n, H, W],
            // filters g_i), cut to k_h × k_w; ≈ 1.4× faster than im2col + bmm for the CNN's conv1.
            let sa = a.size();
            let gs = g.size();
            let out = a.reshape([1, n, sa[2], sa[3]]).conv2d(
                &g.reshape([n * gs[1], 1, gs[2], gs[3]]),
                None::<Tensor>,
                self.dilation,
                self.padding,
                self.stride,
                n,
            );
            out.narrow(2, 0, ws[2]).narrow(3, 0, ws[3]).reshape([vec![n], ws].concat().as_slice())
        } else {
            let au = self.unfold(a);
            g3.bmm(&au).view([n, -1]).reshape([vec![n], ws].concat().as_slice())
        };
        let mut out = vec![w];
        if self.bias.is_some() {
            out.push(g3.sum_dim_intlist(2, false, Kind::Float));
        }
        out
    }

    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let au = self.unfold(a);
        let g3 = Self::g3(g);
        let gg = g3.transpose(1, 2).bmm(&g3);
        let aa = au.bmm(&au.transpose(1, 2));
        let w = (gg * aa).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
        if self.bias.is_some() {
            w + g3.sum_dim_intlist(2, false, Kind::Float).square().sum_dim_intlist(1, false, Kind::Float)
        } else {
            w
        }
    }

    fn ghost_is_cheaper(&self, _a: &Tensor, g: &Tensor) -> bool {
        let s = g.size();
        let l: i64 = s[2..].iter().product();
        let w = self.weight.size();
        2 * l * l < w[0] * w[1] * w[2] * w[3]
    }

    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
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

    /// The im2col reference: per-sample ∇W_i = g_i · im2col(a)_i.
    fn reference(conv: &Conv2d, a: &Tensor, g: &Tensor) -> Tensor {
        let n = a.size()[0];
        Conv2d::g3(g).bmm(&conv.unfold(a)).reshape([vec![n], conv.weight.size()].concat().as_slice())
    }

    #[test]
    fn grouped_and_weight_grad_paths_match_im2col() {
        let _g = tch::no_grad_guard();
        let mut r = crate::rng::stream(Some(3), crate::rng::Stream::Data);
        let mut rnd = |shape: &[i64]| {
            use rand::RngExt;
            let v: Vec<f32> = (0..shape.iter().product::<i64>()).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
            Tensor::from_slice(&v).reshape(shape)
        };
        for (cin, k, stride, pad, dil, hw) in [(1i64, 3i64, 1i64, 1i64, 1i64, 9i64), (1, 4, 2, 3, 2, 13), (3, 3, 2, 1, 2, 12), (2, 2, 3, 0, 1, 10)] {
            let conv = Conv2d { weight: rnd(&[5, cin, k, k]), bias: Some(rnd(&[5])), stride: [stride; 2], padding: [pad; 2], dilation: [dil; 2] };
            let a = rnd(&[4, cin, hw, hw]);
            let (_, z) = conv.forward(&a);
            let g = rnd(z.size().as_slice());
            let want = reference(&conv, &a, &g);
            let got = conv.grad_sample(&a, &g);
            let scale = want.abs().max().double_value(&[]);
            assert!((&got[0] - &want).abs().max().double_value(&[]) <= 1e-5 * scale, "per-sample grads, cin {cin} k {k} s {stride} p {pad} d {dil}");
            let c = Tensor::from_slice(&[0.5f32, 1.0, 0.25, 2.0]);
            let sums = conv.clipped_sum(&a, &g, &c);
            let want_sum = (&want * c.view([-1, 1, 1, 1, 1])).sum_dim_intlist(0, false, Kind::Float);
            assert!((&sums[0] - &want_sum).abs().max().double_value(&[]) <= 1e-5 * scale, "clipped sum, cin {cin} k {k} s {stride} p {pad} d {dil}");
            let want_b = (&g * c.view([-1, 1, 1, 1])).sum_dim_intlist([0, 2, 3].as_slice(), false, Kind::Float);
            assert!((&sums[1] - &want_b).abs().max().double_value(&[]) <= 1e-5 * scale);
        }
    }
}
