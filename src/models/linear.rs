//! Linear layer `z = a Wᵀ + b` and its grad sampler (Opacus `grad_sample/linear.py`).
//!
//! Input `a` is `[n, d_in]` or a sequence `[n, T, d_in]`; `g = ∂L/∂z` has the matching shape.
//! - per-sample: ∇W_i = Σ_t g_{i,t} a_{i,t}ᵀ (einsum "n...i,n...j->nij"), ∇b_i = Σ_t g_{i,t};
//! - ghost norm: 2-D input ‖∇W_i‖² = ‖g_i‖²‖a_i‖²; sequences ⟨g_i g_iᵀ, a_i a_iᵀ⟩ (Gram matrices,
//!   Li et al. 2022 / Bu et al. 2023), cheaper than materialising when 2T² < d_in·d_out;
//! - clipped sum: Σ_i c_i ∇W_i = (c ⊙ g)ᵀ a, one matmul.

use super::layer::{bcast, row_sq_norms, GradSampler};
use tch::{Kind, Tensor};

/// A dense layer. `weight` is `[d_out, d_in]`, `bias` `[d_out]`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    fn flat(a: &Tensor, g: &Tensor) -> (Tensor, Tensor) {
        let din = *a.size().last().expect("rank ≥ 2");
        let dout = *g.size().last().expect("rank ≥ 2");
        (a.reshape([-1, din]), g.reshape([-1, dout]))
    }
}

impl GradSampler for Linear {
    fn params(&self) -> Vec<&Tensor> {
        let mut v = vec![&self.weight];
        if let Some(b) = &self.bias {
            v.push(b);
        }
        v
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let z = x.linear(&self.weight, self.bias.as_ref());
        (x.shallow_clone(), z)
    }

    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(2);
        if a.dim() == 2 {
            out.push(g.unsqueeze(2) * a.unsqueeze(1));
            if self.bias.is_some() {
                out.push(g.shallow_clone());
            }
        } else {
            // [n, T, d]: batched gᵀa over the sequence.
            let a3 = a.reshape([a.size()[0], -1, *a.size().last().expect("activations have rank ≥ 2")]);
            let g3 = g.reshape([g.size()[0], -1, *g.size().last().expect("output gradients have rank ≥ 2")]);
            out.push(g3.transpose(1, 2).bmm(&a3));
            if self.bias.is_some() {
                out.push(g3.sum_dim_intlist(1, false, Kind::Float));
            }
        }
        out
    }

    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        if a.dim() == 2 {
            let gg = row_sq_norms(g);
            let mut aa = row_sq_norms(a);
            if self.bias.is_some() {
                aa.g_add_scalar_(1.0).g_mul_(&gg)
            } else {
                aa.g_mul_(&gg)
            }
        } else {
            let n = a.size()[0];
            let a3 = a.reshape([n, -1, *a.size().last().expect("activations have rank ≥ 2")]);
            let g3 = g.reshape([n, -1, *g.size().last().expect("output gradients have rank ≥ 2")]);
            let ga = g3.bmm(&g3.transpose(1, 2));
            let aa = a3.bmm(&a3.transpose(1, 2));
            let w = (ga * aa).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
            if self.bias.is_some() {
                w + row_sq_norms(&g3.sum_dim_intlist(1, false, Kind::Float))
            } else {
                w
            }
        }
    }

    fn ghost_is_cheaper(&self, a: &Tensor, _g: &Tensor) -> bool {
        if a.dim() == 2 {
            return true;
        }
        let s = a.size();
        let t: i64 = s[1..s.len() - 1].iter().product();
        let w = self.weight.size();
        2 * t * t < w[0] * w[1]
    }

    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let gc = g * bcast(c, g.dim());
        let (af, gf) = Self::flat(a, &gc);
        let mut out = vec![gf.transpose(0, 1).mm(&af)];
        if self.bias.is_some() {
            out.push(gf.sum_dim_intlist(0, false, Kind::Float));
        }
        out
    }
}
