//! LayerNorm over the last dimension (Ba et al. 2016) with an elementwise affine map, and its grad
//! sampler (Opacus `grad_sample/layer_norm.py`). As for GroupNorm, the forward records the
//! normalised input `a = x̂`; then ∇γ_i = Σ_{positions} x̂_i ⊙ g_i, ∇β_i = Σ_{positions} g_i.
//! Per-sample gradients are `[n, D]`, always materialised.

use super::layer::{bcast, GradSampler};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

fn middle_dims(t: &Tensor) -> Vec<i64> {
    (1..t.dim() as i64 - 1).collect()
}

impl GradSampler for LayerNorm {
    fn params(&self) -> Vec<&Tensor> {
        vec![&self.weight, &self.bias]
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let d = self.weight.size()[0];
        let xh = x.layer_norm::<Tensor>([d], None, None, self.eps, false);
        let z = &xh * &self.weight + &self.bias;
        (xh, z)
    }

    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let d = middle_dims(g);
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
        let dims: Vec<i64> = (0..g.dim() as i64 - 1).collect();
        vec![
            (a * &gc).sum_dim_intlist(dims.as_slice(), false, Kind::Float),
            gc.sum_dim_intlist(dims.as_slice(), false, Kind::Float),
        ]
    }
}
