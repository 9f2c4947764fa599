//! The per-layer contract behind DP-SGD: a functional forward that exposes the layer's input
//! activation `a` and output `z`, and the three per-sample computations Opacus's grad samplers do
//! from `(a, g = ∂L/∂z)` (Opacus `opacus/grad_sample/`; Bu et al. 2023 for the book-keeping sum).

use tch::{Kind, Tensor};

/// One DP-aware layer type. `n` is the batch size; every returned per-sample tensor has `n` first.
pub trait GradSampler {
    /// The layer's parameters, in a fixed order (weight first, then bias if any).
    fn params(&self) -> Vec<&Tensor>;
    /// Forward pass. Returns `(a, z)`: `a` is what the per-sample formulas need (the layer input,
    /// or for normalisation layers the normalised input that the affine map sees) and `z` the output.
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor);
    /// Per-sample gradients, one tensor `[n, *param.shape]` per parameter (materialise).
    fn grad_sample(&self, a: &Tensor, g: &Tensor) -> Vec<Tensor>;
    /// Per-sample squared gradient norms `[n]` summed over this layer's parameters, computed
    /// without materialising per-sample gradients where a cheaper formula exists ("ghost norm").
    fn ghost_sq_norm(&self, a: &Tensor, g: &Tensor) -> Tensor {
        sq_norms_of(&self.grad_sample(a, g))
    }
    /// Whether the engine should take only the norms ([`Self::ghost_sq_norm`], then
    /// [`Self::clipped_sum`]) rather than keep materialised per-sample gradients for these shapes
    /// (Bu et al. 2023's layerwise decision; each layer states its own rule, by time or memory).
    /// Layers whose per-sample gradients are tiny say `false`.
    fn ghost_is_cheaper(&self, _a: &Tensor, _g: &Tensor) -> bool {
        false
    }
    /// The clipped sum Σ_i c_i ∇_i for each parameter, taken straight from `(a, g, c)` without
    /// materialising per-sample gradients (book-keeping, Bu et al. 2023, §3).
    fn clipped_sum(&self, a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor>;
}

/// Σ over parameters of the per-sample squared norms: `[n]`.
pub fn sq_norms_of(gs: &[Tensor]) -> Tensor {
    let mut acc: Option<Tensor> = None;
    for t in gs {
        let n = t.size()[0];
        let s = t.reshape([n, -1]).square().sum_dim_intlist(1, false, Kind::Float);
        acc = Some(match acc {
            None => s,
            Some(a) => a + s,
        });
    }
    acc.expect("a layer has at least one parameter")
}

/// Σ_i c_i x_i for a per-sample tensor `x` of shape `[n, ...]`: one `[1, n] × [n, P]` matmul.
pub fn weighted_sum(x: &Tensor, c: &Tensor) -> Tensor {
    let size = x.size();
    let n = size[0];
    c.view([1, n]).mm(&x.reshape([n, -1])).reshape(&size[1..])
}

/// Reshape `c` (`[n]`) so that it broadcasts against a tensor of rank `rank` with batch first.
pub fn bcast(c: &Tensor, rank: usize) -> Tensor {
    let mut shape = vec![-1i64];
    shape.extend(std::iter::repeat_n(1i64, rank.saturating_sub(1)));
    c.view(shape.as_slice())
}
