//! Embedding lookup `z_{i,t} = W[x_{i,t}]` and its grad sampler (Opacus `grad_sample/embedding.py`).
//!
//! - per-sample: ∇W_i[v] = Σ_{t : x_{i,t} = v} g_{i,t}, built by `index_add` into `[n·V, D]`;
//! - ghost norm: ‖∇W_i‖² = Σ_{t,t'} [x_{i,t} = x_{i,t'}] ⟨g_{i,t}, g_{i,t'}⟩ (never builds `[n, V, D]`);
//! - clipped sum: `index_add` of c_i g_{i,t} into `[V, D]`.

use super::layer::{bcast, GradSampler};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct Embedding {
    /// `[V, D]`.
    pub weight: Tensor,
}

impl GradSampler for Embedding {
    fn params(&self) -> Vec<&Tensor> {
        vec![&self.weight]
    }

    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let ids = x.to_kind(Kind::Int64);
        let z = Tensor::embedding(&self.weight, &ids, -1, false, false);
        (ids, z)
    }

    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        let n = a.size()[0];
        let ws = self.weight.size();
        let (v, d) = (ws[0], ws[1]);
        let ids = a.reshape([n, -1]);
        let t = ids.size()[1];
        let rows = Tensor::arange(n, (Kind::Int64, a.device())).view([n, 1]) * v + &ids;
        let out = Tensor::zeros([n * v, d], (g.kind(), g.device()));
        let out = out.index_add(0, &rows.reshape([-1]), &g.reshape([n * t, d]));
        vec![out.view([n, v, d])]
    }

    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let n = a.size()[0];
        let d = self.weight.size()[1];
        let ids = a.reshape([n, -1]);
        let g3 = g.reshape([n, -1, d]);
        let same = ids.unsqueeze(2).eq_tensor(&ids.unsqueeze(1)).to_kind(g.kind());
        let gg = g3.bmm(&g3.transpose(1, 2));
        (same * gg).sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)
    }

    fn ghost_is_cheaper(&self, a: &Tensor, _g: &Tensor) -> bool {
        let n = a.size()[0];
        let t = a.numel() as i64 / n.max(1);
        let ws = self.weight.size();
        2 * t * t < ws[0] * ws[1]
    }

    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let d = self.weight.size()[1];
        let gc = g * bcast(c, g.dim());
        let out = Tensor::zeros(self.weight.size().as_slice(), (g.kind(), g.device()));
        vec![out.index_add(0, &a.reshape([-1]), &gc.reshape([-1, d]))]
    }
}
