//! Embedding lookup `z_{i,t} = W[x_{i,t}]` and its grad sampler (Opacus `grad_sample/embedding.py`).
//!
//! - per-sample: ∇W_i[v] = Σ_{t : x_{i,t} = v} g_{i,t}, built by `index_add` into `[n·V, D]`;
//! - ghost norm: ‖∇W_i‖² = Σ_v ‖Σ_{t : x_{i,t} = v} g_{i,t}‖² over the ids that occur (unique
//!   (example, id) keys, `index_add`; never builds `[n, V, D]` nor the `[n, T, T]` id-equality Gram);
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

    /// ‖∇W_i‖² = Σ_v ‖Σ_{t : x_{i,t} = v} g_{i,t}‖² with the sum over positions formed only for
    /// the (example, id) pairs that occur: the keys i·V + x_{i,t} are made unique (sorted), the
    /// g_{i,t} are `index_add`ed into one row per unique key, and each row's squared norm is added
    /// to its example. O(nT log nT + nTD) work and `[≤ nT, D]` memory, against O(nT²D) for the
    /// pairwise form Σ_{t,t'} [x_{i,t} = x_{i,t'}] ⟨g_{i,t}, g_{i,t'}⟩ (the same number up to
    /// float summation order).
    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        let n = a.size()[0];
        let ws = self.weight.size();
        let (v, d) = (ws[0], ws[1]);
        if n == 0 {
            return Tensor::zeros([0], (Kind::Float, g.device()));
        }
        let ids = a.reshape([n, -1]).to_kind(Kind::Int64);
        let keys = (Tensor::arange(n, (Kind::Int64, a.device())).view([n, 1]) * v + &ids).reshape([-1]);
        let (unique, inverse, _) = keys.internal_unique2(true, true, false);
        let rows = Tensor::zeros([unique.size()[0], d], (g.kind(), g.device())).index_add(
            0,
            &inverse.reshape([-1]),
            &g.reshape([-1, d]),
        );
        let sq = rows.square().sum_dim_intlist(1, false, Kind::Float);
        let owner = unique.divide_scalar_mode(v, "floor");
        Tensor::zeros([n], (Kind::Float, g.device())).index_add(0, &owner, &sq)
    }

    /// The norm above costs about T·D per example; materialising costs V·D: materialise only
    /// for tables with fewer rows than twice the sequence length.
    fn ghost_is_cheaper(&self, a: &Tensor, _g: &Tensor) -> bool {
        let n = a.size()[0];
        let t = a.numel() as i64 / n.max(1);
        2 * t < self.weight.size()[0]
    }

    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let d = self.weight.size()[1];
        let gc = g * bcast(c, g.dim());
        let out = Tensor::zeros(self.weight.size().as_slice(), (g.kind(), g.device()));
        vec![out.index_add(0, &a.reshape([-1]), &gc.reshape([-1, d]))]
    }
}
