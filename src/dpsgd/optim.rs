//! Optimizers applied to the (privatised) gradient. Post-processing of a DP gradient is free
//! (DP is closed under post-processing), so momentum and Adam state cost no privacy.
//! Weight decay is an L2 term λθ added *after* privatisation, i.e. outside the clip: it depends on
//! θ only, not on any record. Updates follow PyTorch's `SGD` and `Adam` (Kingma & Ba 2015, Alg. 1).

use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adam,
}

/// Adam's β₁, β₂, ε (PyTorch defaults).
pub const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
pub const ADAM_EPS: f64 = 1e-8;

#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f64, momentum: f64, weight_decay: f64, params: &[Tensor]) -> Self {
        let zeros = || params.iter().map(|p| p.zeros_like().detach()).collect::<Vec<_>>();
        let m = if kind == OptimizerKind::Adam || momentum != 0.0 { zeros() } else { Vec::new() };
        let v = if kind == OptimizerKind::Adam { zeros() } else { Vec::new() };
        Optimizer { kind, lr, momentum, weight_decay, m, v, t: 0 }
    }

    /// Change η for the following steps (learning-rate schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// θ ← update(θ, g) in place, for each parameter and its gradient.
    /// SGD: d = g + λθ; b ← μb + d; θ ← θ − η b (b = d when μ = 0).
    /// Adam: d = g + λθ; m ← β₁m + (1−β₁)d; v ← β₂v + (1−β₂)d²;
    /// θ ← θ − η m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor]) {
        self.t += 1;
        tch::no_grad(|| {
            for (k, (p, g)) in params.iter().zip(grads).enumerate() {
                let mut p = p.shallow_clone();
                let d = if self.weight_decay != 0.0 { g + &p * self.weight_decay } else { g.shallow_clone() };
                match self.kind {
                    OptimizerKind::Sgd => {
                        if self.momentum != 0.0 {
                            let b = &mut self.m[k];
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&d);
                            let _ = p.g_add_(&(&*b * -self.lr));
                        } else {
                            let _ = p.g_add_(&(d * -self.lr));
                        }
                    }
                    OptimizerKind::Adam => {
                        let (b1, b2) = ADAM_BETAS;
                        let m = &mut self.m[k];
                        let _ = m.g_mul_scalar_(b1).g_add_(&(&d * (1.0 - b1)));
                        let v = &mut self.v[k];
                        let _ = v.g_mul_scalar_(b2).g_add_(&(d.square() * (1.0 - b2)));
                        let bc1 = 1.0 - b1.powi(self.t as i32);
                        let bc2 = 1.0 - b2.powi(self.t as i32);
                        let denom = (&*v / bc2).sqrt() + ADAM_EPS;
                        let _ = p.g_add_(&((&*m / denom) * (-self.lr / bc1)));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn p(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).set_requires_grad(true)
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let params = vec![p(&[1.0, 2.0])];
        let mut o = Optimizer::new(OptimizerKind::Sgd, 0.1, 0.9, 0.5, &params);
        let g = vec![Tensor::from_slice(&[1.0f32, -1.0])];
        o.step(&params, &g);
        // d = g + 0.5θ = [1.5, 0]; b = d; θ = θ − 0.1 b = [0.85, 2.0]
        o.step(&params, &g);
        // d = [1 + 0.425, −1 + 1] = [1.425, 0]; b = 0.9·[1.5,0] + d = [2.775, 0]; θ = [0.85 − 0.2775, 2]
        let got: Vec<f32> = Vec::try_from(&params[0].detach()).unwrap();
        assert!((got[0] - 0.5725).abs() < 1e-6 && (got[1] - 2.0).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let params = vec![p(&[1.0, -1.0])];
        let mut o = Optimizer::new(OptimizerKind::Adam, 0.01, 0.0, 0.0, &params);
        o.step(&params, &[Tensor::from_slice(&[3.0f32, -0.2])]);
        // m̂ = g, v̂ = g², so the step is lr·sign(g) (up to ε).
        let got: Vec<f32> = Vec::try_from(&params[0].detach()).unwrap();
        assert!((got[0] - 0.99).abs() < 1e-5 && (got[1] + 0.99).abs() < 1e-5, "{got:?}");
        let _ = (Kind::Float, Device::Cpu);
    }
}
