//! A small transformer encoder classifier for token ids (Vaswani et al. 2017, pre-LayerNorm as in
//! Xiong et al. 2020), built only from DP layers whose grad samplers already exist:
//!
//! ```text
//! ids [n, T] → Embedding(V, d) → + PositionEmbedding(T, d)
//!   → L × { h += Wo · MHA(Wqkv · LN(h), mask);  h += W2 · GELU(W1 · LN(h)) }
//!   → LN → mean over non-padding positions → Linear(d, K)
//! ```
//!
//! # Per-sample gradients
//! Every parameter sits in an Embedding, PositionEmbedding, LayerNorm or Linear layer; the
//! attention's scores, softmax, masking and value mixing have no parameters. The tape records each
//! DP layer's `(a, z)` and one backward from Σ_i ℓ_i to all the z gives g = ∂L/∂z *through* the
//! attention (autograd does that part), so each layer's per-sample gradient follows from its own
//! formula. Attention mixes positions of one sequence, never examples, so g_i still depends only on
//! ℓ_i and the per-sample quantities are exact.
//!
//! The projections are Linear layers over a sequence: ∇W_i = Σ_t g_{i,t} a_{i,t}ᵀ (Opacus
//! `grad_sample/linear.py`, einsum "n...i,n...j->nij"), and the norm without materialising is
//! ‖∇W_i‖²_F = ⟨g_i g_iᵀ, a_i a_iᵀ⟩ with T × T Gram matrices (Li et al. 2022; Bu et al. 2023,
//! "Differentially Private Optimization on Large Model at Small Cost", §3). [`super::Linear`]
//! picks between the two by cost (2T² < d_in·d_out: Gram), as the Conv2d layer does with L output
//! positions; the token Embedding uses its own ghost norm (equal-token mask times the g Gram).
//!
//! # Padding
//! Token id [`PAD_ID`] marks padding. Padded keys get −10⁹ added to their scores (a finite number:
//! a sequence of padding only still gives a finite, uniform softmax), and the pooled mean runs over
//! non-padding positions only (at least one: the loaders put `[BOS]` first), so padding never
//! reaches the logits and its positions get g = 0.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub use crate::data::tokenizer::PAD_ID;

/// Sizes of the transformer classifier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformerShape {
    /// Rows of the token embedding (ids `0..vocab`).
    pub vocab: i64,
    /// Model width d.
    pub dim: i64,
    /// Attention heads (d must be a multiple).
    pub heads: i64,
    /// Encoder blocks.
    pub layers: i64,
    /// Width of the feed-forward block.
    pub ff: i64,
}

/// The shape [`super::Model::new`] builds for [`super::ModelKind::Transformer`] (vocabulary from
/// the data when trained through `crowdout train`): d = 64, 4 heads, 2 blocks, feed-forward 128.
pub const DEFAULT_TRANSFORMER: TransformerShape =
    TransformerShape { vocab: super::DEFAULT_VOCAB, dim: 64, heads: 4, layers: 2, ff: 128 };

/// Score added to padded keys.
const MASKED: f64 = -1e9;

/// `[n, T]` float mask, 1 at real tokens and 0 at padding.
pub(crate) fn token_mask(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Int64).ne(PAD_ID).to_kind(Kind::Float)
}

/// Multi-head scaled dot-product attention of a fused projection `qkv` (`[n, T, 3d]`, q then k
/// then v) with key mask `mask` (`[n, T]`): softmax(q kᵀ/√d_h + bias) v per head, heads
/// concatenated back to `[n, T, d]`.
pub(crate) fn attention(qkv: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
    let s = qkv.size();
    let (n, t, d) = (s[0], s[1], s[2] / 3);
    let dh = d / heads;
    let split = |k: i64| qkv.narrow(2, k * d, d).reshape([n, t, heads, dh]).transpose(1, 2);
    let (q, k, v) = (split(0), split(1), split(2));
    let bias = ((mask - 1.0) * -MASKED).view([n, 1, 1, t]);
    let scores = q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt() + bias;
    let p = scores.softmax(-1, Kind::Float);
    p.matmul(&v).transpose(1, 2).reshape([n, t, d])
}

/// Mean of `h` (`[n, T, d]`) over the positions where `mask` (`[n, T]`) is 1.
pub(crate) fn masked_mean(h: &Tensor, mask: &Tensor) -> Tensor {
    let count = mask.sum_dim_intlist(1, true, Kind::Float).clamp_min(1.0);
    (h * mask.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Float) / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layer::test_randn;

    #[test]
    fn attention_ignores_padded_keys_and_pooling_ignores_padded_positions() {
        let (n, t, d) = (2, 5, 8);
        let qkv = test_randn(&[n, t, 3 * d], 1);
        let mask = Tensor::from_slice(&[1f32, 1., 1., 0., 0., 1., 1., 1., 1., 1.]).view([n, t]);
        let out = attention(&qkv, &mask, 2);
        // Changing the values (and keys) at padded positions of example 0 changes nothing at its
        // real positions.
        let other = qkv.copy();
        other.narrow(0, 0, 1).narrow(1, 3, 2).narrow(2, d, 2 * d).copy_(&test_randn(&[1, 2, 2 * d], 2));
        let out2 = attention(&other, &mask, 2);
        let real = |o: &Tensor| o.narrow(0, 0, 1).narrow(1, 0, 3);
        assert!(real(&out).allclose(&real(&out2), 1e-6, 1e-6, false));
        // One head by hand for example 1 (no padding): softmax(q kᵀ/√d) v.
        let one = attention(&qkv.narrow(0, 1, 1), &mask.narrow(0, 1, 1), 1);
        let (q, k, v) = (qkv.narrow(2, 0, d), qkv.narrow(2, d, d), qkv.narrow(2, 2 * d, d));
        let want = (q.matmul(&k.transpose(-2, -1)) / (d as f64).sqrt()).softmax(-1, Kind::Float).matmul(&v);
        assert!(one.allclose(&want.narrow(0, 1, 1), 1e-5, 1e-6, false));
        let h = test_randn(&[n, t, d], 3);
        let m = masked_mean(&h, &mask);
        let want0 = h.narrow(0, 0, 1).narrow(1, 0, 3).mean_dim(1, false, Kind::Float);
        assert!(m.narrow(0, 0, 1).allclose(&want0, 1e-6, 1e-6, false));
    }
}
