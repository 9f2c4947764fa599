//! Per-sample clipping of one physical batch: per-sample gradients or norms, clip factors and the
//! clipped sum Σ_i c_i ∇ℓ_i, in the three [`GradMode`]s.
//!
//! Materialize/Ghost: one forward with a [`Tape`], one `run_backward` from Σ_i ℓ_i to the layer
//! outputs z only (no parameter gradients are formed), then per layer the grad sampler works on
//! (a, g = ∂L/∂z). Because every layer treats examples independently (no BatchNorm), g_i depends
//! only on ℓ_i, so these are exact per-sample quantities (Opacus's hooks do the same).

use super::{Clipping, GradMode};
use crate::models::layer::{sq_norms_of, weighted_sum};
use crate::models::{Model, Tape};
use tch::{Kind, Tensor};

/// The result of clipping one physical batch.
#[derive(Debug)]
pub struct ClippedBatch {
    /// Σ_i c_i ∇ℓ_i per parameter, in [`Model::parameters`] order.
    pub sums: Vec<Tensor>,
    /// Per layer, the unclipped per-sample squared gradient norms `[n]`.
    pub sq_norms: Vec<Tensor>,
    /// Per layer, the clip factors `[n]` applied to that layer (the same for all layers when flat).
    pub factors: Vec<Tensor>,
    /// Σ_i ℓ_i (for logging).
    pub loss_sum: f64,
    /// Number of examples.
    pub n: usize,
}

/// Clip factors from per-layer squared norms: flat c_i = min(1, C/‖g_i‖) with
/// ‖g_i‖² = Σ_l ‖g_{i,l}‖²; per-layer c_{i,l} = min(1, C_l/‖g_{i,l}‖) with C_l = C/√K.
/// A zero gradient gets factor 1 (1/√0 = ∞, and min(1, ∞·C) = 1 for C > 0).
pub fn clip_factors(sq_norms: &[Tensor], max_norm: f64, clipping: Clipping) -> Vec<Tensor> {
    let factor = |sq: &Tensor, c: f64| (sq.rsqrt() * c).clamp_max(1.0);
    match clipping {
        Clipping::Flat => {
            // Out of place (`t + s`, not `+=`): an in-place add would write into sq_norms[0].
            let total = sq_norms[1..].iter().fold(sq_norms[0].shallow_clone(), |t, s| t + s);
            let f = factor(&total, max_norm);
            sq_norms.iter().map(|_| f.shallow_clone()).collect()
        }
        Clipping::PerLayer => {
            let cl = max_norm / (sq_norms.len() as f64).sqrt();
            sq_norms.iter().map(|s| factor(s, cl)).collect()
        }
    }
}

/// Forward with a tape and backward to the layer outputs: per layer `(a, g)`, in layer order,
/// plus Σ ℓ_i.
fn tape_backward(model: &Model, x: &Tensor, y: &Tensor) -> (Vec<(Tensor, Tensor)>, f64) {
    let mut tape = Tape::default();
    let logits = model.forward(x, Some(&mut tape));
    let loss = Model::per_example_loss(&logits, y).sum(Kind::Float);
    let zs: Vec<&Tensor> = tape.entries.iter().map(|e| &e.z).collect();
    let gs = Tensor::run_backward(&[&loss], &zs, false, false);
    let mut out: Vec<Option<(Tensor, Tensor)>> = (0..model.layers.len()).map(|_| None).collect();
    for (e, g) in tape.entries.into_iter().zip(gs) {
        out[e.layer] = Some((e.a, g));
    }
    let out = out.into_iter().map(|o| o.expect("every layer is applied exactly once")).collect();
    (out, loss.double_value(&[]))
}

/// Naive oracle: per-sample gradients, one backward per example, stacked `[n, ...]` per parameter.
fn naive_grads(model: &Model, x: &Tensor, y: &Tensor) -> (Vec<Tensor>, f64) {
    let params = model.parameters();
    let n = x.size()[0];
    let mut per: Vec<Vec<Tensor>> = params.iter().map(|_| Vec::with_capacity(n as usize)).collect();
    let mut loss_sum = 0.0;
    for i in 0..n {
        let xi = x.narrow(0, i, 1);
        let yi = y.narrow(0, i, 1);
        let loss = Model::per_example_loss(&model.forward(&xi, None), &yi).sum(Kind::Float);
        loss_sum += loss.double_value(&[]);
        let gs = Tensor::run_backward(&[&loss], &params, false, false);
        for (v, g) in per.iter_mut().zip(gs) {
            v.push(g);
        }
    }
    let stacked = per
        .into_iter()
        .zip(&params)
        .map(|(v, p)| {
            if v.is_empty() {
                Tensor::zeros([vec![0], p.size()].concat().as_slice(), (p.kind(), p.device()))
            } else {
                Tensor::stack(&v, 0)
            }
        })
        .collect();
    (stacked, loss_sum)
}

/// Per-sample gradients `[n, *param.shape]` for every parameter. `Ghost` materialises too (it is
/// only a way to get norms); `Naive` loops over examples.
pub fn per_sample_grads(model: &Model, x: &Tensor, y: &Tensor, mode: GradMode) -> Vec<Tensor> {
    match mode {
        GradMode::Naive => naive_grads(model, x, y).0,
        GradMode::Materialize | GradMode::Ghost => {
            let (ag, _) = tape_backward(model, x, y);
            tch::no_grad(|| {
                model.layers.iter().zip(&ag).flat_map(|(l, (a, g))| l.sampler().grad_sample(a, g)).collect()
            })
        }
    }
}

/// Per layer, per-sample squared gradient norms `[n]`. `Ghost` always uses the layer's ghost
/// formula (even where the engine would materialise), so tests exercise it.
pub fn per_sample_sq_norms(model: &Model, x: &Tensor, y: &Tensor, mode: GradMode) -> Vec<Tensor> {
    match mode {
        GradMode::Naive => {
            let (g, _) = naive_grads(model, x, y);
            model.layer_param_ranges().into_iter().map(|r| sq_norms_of(&g[r])).collect()
        }
        GradMode::Materialize => {
            let (ag, _) = tape_backward(model, x, y);
            tch::no_grad(|| {
                model
                    .layers
                    .iter()
                    .zip(&ag)
                    .map(|(l, (a, g))| sq_norms_of(&l.sampler().grad_sample(a, g)))
                    .collect()
            })
        }
        GradMode::Ghost => {
            let (ag, _) = tape_backward(model, x, y);
            tch::no_grad(|| {
                model.layers.iter().zip(&ag).map(|(l, (a, g))| l.sampler().ghost_sq_norm(a, g)).collect()
            })
        }
    }
}

/// Clip one physical batch and return Σ_i c_i ∇ℓ_i with the norms and factors used.
/// An empty batch gives zero sums.
pub fn clipped_grad_sum(
    model: &Model,
    x: &Tensor,
    y: &Tensor,
    max_norm: f64,
    clipping: Clipping,
    mode: GradMode,
) -> ClippedBatch {
    let n = x.size()[0];
    let params = model.parameters();
    if n == 0 {
        return ClippedBatch {
            sums: params.iter().map(|p| p.zeros_like().detach()).collect(),
            sq_norms: model.layers.iter().map(|_| Tensor::zeros([0], (Kind::Float, model.device))).collect(),
            factors: model.layers.iter().map(|_| Tensor::zeros([0], (Kind::Float, model.device))).collect(),
            loss_sum: 0.0,
            n: 0,
        };
    }
    let ranges = model.layer_param_ranges();
    if mode == GradMode::Naive {
        let (g, loss_sum) = naive_grads(model, x, y);
        return tch::no_grad(|| {
            let sq: Vec<Tensor> = ranges.iter().map(|r| sq_norms_of(&g[r.clone()])).collect();
            let f = clip_factors(&sq, max_norm, clipping);
            let mut sums = Vec::with_capacity(params.len());
            for (r, c) in ranges.iter().zip(&f) {
                for gp in &g[r.clone()] {
                    sums.push(weighted_sum(gp, c));
                }
            }
            ClippedBatch { sums, sq_norms: sq, factors: f, loss_sum, n: n as usize }
        });
    }
    let (ag, loss_sum) = tape_backward(model, x, y);
    tch::no_grad(|| {
        // Per layer, what the clipped sum needs: the kept per-sample grads, or (a, g) for the
        // book-keeping sum. (a, g) of a layer that keeps its grads is dropped at once, and every
        // layer's are dropped once its sum is formed, which bounds the peak memory.
        enum Held {
            Grads(Vec<Tensor>),
            Backprops(Tensor, Tensor),
        }
        let mut held = Vec::with_capacity(ag.len());
        let mut sq = Vec::with_capacity(ag.len());
        for (l, (a, g)) in model.layers.iter().zip(ag) {
            let s = l.sampler();
            if mode == GradMode::Ghost && s.ghost_is_cheaper(&a, &g) {
                sq.push(s.ghost_sq_norm(&a, &g));
                held.push(Held::Backprops(a, g));
            } else {
                let gs = s.grad_sample(&a, &g);
                sq.push(sq_norms_of(&gs));
                held.push(Held::Grads(gs));
            }
        }
        let f = clip_factors(&sq, max_norm, clipping);
        let mut sums = Vec::with_capacity(params.len());
        for ((l, h), c) in model.layers.iter().zip(held).zip(&f) {
            match h {
                Held::Grads(gs) => sums.extend(gs.iter().map(|gp| weighted_sum(gp, c))),
                Held::Backprops(a, g) => sums.extend(l.sampler().clipped_sum(&a, &g, c)),
            }
        }
        ClippedBatch { sums, sq_norms: sq, factors: f, loss_sum, n: n as usize }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_factors_flat_and_per_layer_with_a_zero_gradient() {
        // Layer squared norms for three examples: zero gradient, total norm 5, total norm 0.5.
        let l1 = Tensor::from_slice(&[0f32, 9.0, 0.09]);
        let l2 = Tensor::from_slice(&[0f32, 16.0, 0.16]);
        let flat = clip_factors(&[l1.shallow_clone(), l2.shallow_clone()], 1.0, Clipping::Flat);
        assert_eq!(Vec::<f32>::try_from(&flat[0]).unwrap(), vec![1.0, 0.2, 1.0]);
        assert!(flat[1].equal(&flat[0]));
        // Per layer: budget 1/√2 each; layer 1 norms 0, 3, 0.3; layer 2 norms 0, 4, 0.4.
        let pl = clip_factors(&[l1, l2], 1.0, Clipping::PerLayer);
        let b = 1.0 / 2f64.sqrt();
        for (f, norms) in pl.iter().zip([[0.0, 3.0, 0.3], [0.0, 4.0, 0.4]]) {
            let got = Vec::<f32>::try_from(f).unwrap();
            for (g, n) in got.iter().zip(norms) {
                let want = if n == 0.0 { 1.0 } else { (b / n).min(1.0) };
                assert!((*g as f64 - want).abs() < 1e-6, "{g} vs {want}");
            }
        }
    }
}
