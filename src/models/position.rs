//! Learned position embedding `z_{i,t} = x_{i,t} + P_t` over a sequence `[n, T, d]`, and its grad
//! sampler. The layer's output gradient *is* the per-sample gradient of the table:
//! ∂ℓ_i/∂P_t = g_{i,t} (each position of each example uses row t once), as in Opacus's grad
//! sampler for an `nn.Embedding` looked up with `arange(T)`.
//!
//! - per-sample: ∇P_i = g_i (`[n, T, d]`), no product at all;
//! - norm: ‖∇P_i‖² = Σ_t ‖g_{i,t}‖² (always materialised: it costs what reading g costs);
//! - clipped sum: Σ_i c_i g_i, one `[1, n] × [n, T·d]` product.

use super::layer::{row_sq_norms, weighted_sum, GradSampler};
use tch::Tensor;

/// A `[T, d]` table added to every sequence of length T.
#[derive(Debug)]
pub struct PositionEmbedding {
    /// `[T, d]`.
    pub weight: Tensor,
}

impl GradSampler for PositionEmbedding {
    fn params(&self) -> Vec<&Tensor> {
        vec![&self.weight]
    }

    /// `x` is `[n, T, d]` with T equal to the table's length; `a` is not needed (an empty tensor).
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let z = x + &self.weight;
        (Tensor::empty([0], (x.kind(), x.device())), z)
    }

    fn grad_sample(&self, _a: &Tensor, g: &Tensor) -> Vec<Tensor> {
        vec![g.shallow_clone()]
    }

    fn ghost_sq_norm(&self, _a: &Tensor, g: &Tensor) -> Tensor {
        row_sq_norms(g)
    }

    fn clipped_sum(&self, _a: &Tensor, g: &Tensor, c: &Tensor) -> Vec<Tensor> {
        vec![weighted_sum(g, c)]
    }
}
