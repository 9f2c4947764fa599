//! GroupNorm (Wu & He 2018) with a per-channel affine map, and its grad sampler
//! (Opacus `grad_sample/group_norm.py`). The forward normalises without affine
//! (`x̂ = group_norm(x, G)`) and then applies `z = γ x̂ + β`, recording `a = x̂`, so that
//! ∇γ_i = Σ_{spatial} x̂_i ⊙ g_i and ∇β_i = Σ_{spatial} g_i. Per-sample gradients are `[n, C]`,
//! so they are always materialised (no ghost norm needed).

use super::layer::{bcast, GradSampler};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct GroupNorm {
    pub num_groups: i64,
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

fn spatial_dims(t: &Tensor) -> Vec<i64> {
    (2..t.dim() as i64).collect()
}

fn affine_shape(x: &Tensor) -> Vec<i64> {
    let mut s = vec![1, -1];
    s.extend(std::iter::repeat_n(1, x.dim().saturating_sub(2)));
    s
}

impl GradSampler for GroupNorm {
    fn params(&self) -> Vec<&Tensor> {
        vec![&self.weight, &self.bias]
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let xh = x.group_norm::<Tensor>(self.num_groups, None, None, self.eps, false);
        let sh = affine_shape(x);
        let z = &xh * self.weight.view(sh.as_slice()) + self.bias.view(sh.as_slice());
        (xh, z)
    }

    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let d = spatial_dims(g);
        if d.is_empty() {
            return vec![a * g, g.shallow_clone()];
        }
        vec![
            (a * g).sum_dim_intlist(d.as_slice(), false, Kind::Float),
            g.sum_dim_intlist(d.as_slice(), false, Kind::Float),
        ]
    }

    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let gc = g * bcast(c, g.dim());
        let mut dims = vec![0i64];
        dims.extend(spatial_dims(g));
        vec![
            (a * &gc).sum_dim_intlist(dims.as_slice(), false, Kind::Float),
            gc.sum_dim_intlist(dims.as_slice(), false, Kind::Float),
        ]
    }
}
