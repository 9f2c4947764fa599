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
//! Token id [`PAD_ID`] marks padding. Padded keys get −10⁴ added to their scores ([`MASKED`]: a
//! finite number, so a sequence of padding only still gives a finite softmax), and the pooled mean runs over
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

/// Score added to padded keys. Next to any real key (score above −9,900) a padded one gets weight
/// e^(−10⁴) = 0 in f32, exactly as with −10⁹. Not −10⁹: in f32 that swallows the score itself
/// (ulp 64), and the fused kernel's backward, which recomputes the softmax from score + bias and the
/// stored log-sum-exp, then produced gradients off by tens for a sequence of padding only; at −10⁴
/// the score keeps 10⁻³ of its precision.
const MASKED: f64 = -1e4;

/// `[n, T]` float mask, 1 at real tokens and 0 at padding.
pub(crate) fn token_mask(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Int64).ne(PAD_ID).to_kind(Kind::Float)
}

/// Multi-head scaled dot-product attention of a fused projection `qkv` (`[n, T, 3d]`, q then k
/// then v) with key mask `mask` (`[n, T]`): softmax(q kᵀ/√d_h + bias) v per head, heads
/// concatenated back to `[n, T, d]`.
///
/// Computed by libtorch's fused `scaled_dot_product_attention` (on CPU its flash-attention kernel:
/// scores are formed block by block and never stored, and the backward recomputes them). The
/// explicit form (two matmuls around a stored `[n, h, T, T]` softmax, [`attention_explicit`]) gives
/// the same values up to float rounding (max |Δ| ≈ 1e-6 at W5's shapes) and took 18 ms for one
/// layer's forward and backward at W5's shapes (n = 64, 4 heads, T = 128, d_h = 16; 2 threads)
/// against 7.9 ms fused.
pub(crate) fn attention(qkv: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
    let (q, k, v, bias, (n, t, d)) = split_heads(qkv, mask, heads);
    let dh = d / heads;
    let o = Tensor::scaled_dot_product_attention(
        &q,
        &k,
        &v,
        Some(bias),
        0.0,
        false,
        1.0 / (dh as f64).sqrt(),
        false,
    );
    o.transpose(1, 2).reshape([n, t, d])
}

/// q, k, v as `[n, heads, T, d_h]` views of `qkv`, the additive key mask `[n, 1, 1, T]` (0 at real
/// tokens, [`MASKED`] at padding) and `(n, T, d)`.
fn split_heads(qkv: &Tensor, mask: &Tensor, heads: i64) -> (Tensor, Tensor, Tensor, Tensor, (i64, i64, i64)) {
    let s = qkv.size();
    let (n, t, d) = (s[0], s[1], s[2] / 3);
    let dh = d / heads;
    // One `split` rather than three `narrow`s: its backward concatenates the three gradients, where
    // each narrow's backward zero-fills a full `[n, T, 3d]` gradient and autograd then adds the three.
    let mut parts = qkv.split(d, 2).into_iter().map(|p| p.reshape([n, t, heads, dh]).transpose(1, 2));
    let (q, k, v) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let bias = ((mask - 1.0) * -MASKED).view([n, 1, 1, t]);
    (q, k, v, bias, (n, t, d))
}

/// [`attention`] written out: softmax(q kᵀ/√d_h + bias) v. The reference of the tests.
#[cfg(test)]
pub(crate) fn attention_explicit(qkv: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
    let (q, k, v, bias, (n, t, d)) = split_heads(qkv, mask, heads);
    let dh = d / heads;
    let scores = q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt() + bias;
    scores.softmax(-1, Kind::Float).matmul(&v).transpose(1, 2).reshape([n, t, d])
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

    /// The fused kernel against the explicit formula, values and gradients (what the tape's
    /// backward to the layer outputs runs through), at W5's head size with padding, including a
    /// sequence whose keys are all padding: finite output, and the zero gradient that the pooling
    /// (which skips padded positions) sends back gives zero gradient through it.
    #[test]
    fn fused_attention_matches_the_explicit_formula_with_gradients() {
        let (n, t, d, heads) = (3, 37, 64, 4);
        let tu = t as usize;
        let mut m = vec![1f32; (n * t) as usize];
        m[20..tu].fill(0.0); // example 0: 20 real tokens
        m[2 * tu..].fill(0.0); // example 2: padding only
        let mask = Tensor::from_slice(&m).view([n, t]);
        let up = Tensor::cat(
            &[test_randn(&[n - 1, t, d], 7), Tensor::zeros([1, t, d], (Kind::Float, tch::Device::Cpu))],
            0,
        );
        let run = |f: fn(&Tensor, &Tensor, i64) -> Tensor| {
            let qkv = test_randn(&[n, t, 3 * d], 5).set_requires_grad(true);
            let out = f(&qkv, &mask, heads);
            (&out * &up).sum(Kind::Float).backward();
            (out.detach(), qkv.grad())
        };
        let (o1, g1) = run(attention);
        let (o2, g2) = run(attention_explicit);
        assert!(
            i64::try_from(o1.isfinite().all()).unwrap() == 1
                && i64::try_from(g1.isfinite().all()).unwrap() == 1
        );
        assert_eq!(f64::try_from(g1.narrow(0, 2, 1).abs().max()).unwrap(), 0.0);
        assert!(
            o1.allclose(&o2, 1e-5, 1e-5, false),
            "values differ by {}",
            f64::try_from((&o1 - &o2).abs().max()).unwrap()
        );
        assert!(
            g1.allclose(&g2, 1e-4, 1e-5, false),
            "gradients differ by {}",
            f64::try_from((&g1 - &g2).abs().max()).unwrap()
        );
    }
}
