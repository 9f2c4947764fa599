//! The privatised gradient of one logical batch: clipped sum over physical chunks (virtual
//! steps), plus N(0, σ²C²) noise on every coordinate, divided by the expected batch size L = qN.
//!
//! g̃ = (Σ_{i∈B} c_i ∇ℓ_i + σC·ξ) / L,  ξ ~ N(0, I)   (Abadi et al. 2016, Alg. 1; the normaliser is
//! the *expected* batch size, so that the sensitivity of the sum, not of a mean over a random
//! count, is what the noise covers — as in Opacus with Poisson sampling).
//!
//! The gradient lives in one flat f32 buffer (views per parameter). On the CPU the noise is written
//! straight into that buffer's memory, then the clipped sums are added in place.

use super::engine::clipped_grad_sum;
use super::noise::NoiseSource;
use super::{DpError, DpSettings};
use crate::models::Model;
use crate::params::Checked;
use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct DpSgd {
    pub settings: Checked<DpSettings>,
    /// L = qN, the normaliser.
    pub expected_batch: f64,
    noise: NoiseSource,
    flat: Tensor,
    cpu_noise: Option<Tensor>,
    views: Vec<Tensor>,
}

/// What one privatised step saw.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Σ_i ℓ_i over the logical batch.
    pub loss_sum: f64,
    /// Number of examples in the logical batch.
    pub n: usize,
}

impl DpSgd {
    pub fn new(
        model: &Model,
        settings: Checked<DpSettings>,
        expected_batch: f64,
        seed: Option<u64>,
    ) -> Result<Self, DpError> {
        if !(expected_batch.is_finite() && expected_batch > 0.0) {
            return Err(DpError::Invalid {
                field: "expected batch size",
                value: expected_batch.to_string(),
                reason: "must be > 0",
            });
        }
        let params = model.parameters();
        let total: i64 = params.iter().map(|p| p.numel() as i64).sum();
        let flat = Tensor::zeros([total], (Kind::Float, model.device));
        let mut views = Vec::with_capacity(params.len());
        let mut off = 0;
        for p in &params {
            let n = p.numel() as i64;
            views.push(flat.narrow(0, off, n).view(p.size().as_slice()));
            off += n;
        }
        let cpu_noise = if model.device == Device::Cpu {
            None
        } else {
            Some(Tensor::zeros([total], (Kind::Float, Device::Cpu)))
        };
        Ok(DpSgd { settings, expected_batch, noise: NoiseSource::new(seed), flat, cpu_noise, views })
    }

    /// Fill the gradient buffer with σC·ξ only (the noise alone; also the first part of [`Self::privatise`]).
    pub fn write_noise(&mut self) {
        let std = self.settings.noise_multiplier * self.settings.max_grad_norm;
        if std == 0.0 {
            let _ = self.flat.zero_();
            return;
        }
        match &mut self.cpu_noise {
            None => self.noise.fill_tensor(&mut self.flat, std),
            Some(buf) => {
                self.noise.fill_tensor(buf, std);
                self.flat.copy_(buf);
            }
        }
    }

    /// Compute g̃ for the logical batch `(x, y)` (may be empty); read it with [`Self::grads`].
    pub fn privatise(&mut self, model: &Model, x: &Tensor, y: &Tensor) -> StepStats {
        self.write_noise();
        let n = x.size()[0];
        let chunk = self.settings.max_physical_batch.map(|m| m as i64).unwrap_or(n.max(1));
        let mut loss_sum = 0.0;
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let xb = x.narrow(0, start, len).to_device(model.device);
            let yb = y.narrow(0, start, len).to_device(model.device);
            let cb = clipped_grad_sum(
                model,
                &xb,
                &yb,
                self.settings.max_grad_norm,
                self.settings.clipping,
                self.settings.grad_mode,
            );
            tch::no_grad(|| {
                for (v, s) in self.views.iter_mut().zip(&cb.sums) {
                    let _ = v.g_add_(s);
                }
            });
            loss_sum += cb.loss_sum;
            start += len;
        }
        let _ = tch::no_grad(|| self.flat.g_mul_scalar_(1.0 / self.expected_batch));
        StepStats { loss_sum, n: n as usize }
    }

    /// The last privatised gradient, one tensor per parameter (views of one buffer).
    pub fn grads(&self) -> &[Tensor] {
        &self.views
    }
}
