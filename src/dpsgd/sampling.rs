//! Poisson sampling: each of the N records joins a step's batch independently with probability q
//! (the sampling scheme the subsampled-Gaussian RDP/PLD accountants assume; Mironov et al. 2019).
//!
//! Implemented by geometric skips, which has exactly the per-record Bernoulli(q) law but costs
//! O(qN) draws per step instead of O(N): the gap G before the next selected record is
//! Geometric(q) on {0, 1, …}, drawn as G = ⌊ln U / ln(1 − q)⌋ with U ~ Uniform(0, 1]
//! (P(G ≥ k) = P(U ≤ (1 − q)^k) = (1 − q)^k). Uniforms come from a ChaCha20 stream
//! (`Stream::Sampling`), never from libtorch. Batches may be empty.

use super::DpError;
use crate::rng::{self, ChaCha20Rng, Stream};
use rand::RngExt;

#[derive(Debug)]
pub struct PoissonSampler {
    n: usize,
    q: f64,
    rng: ChaCha20Rng,
}

impl PoissonSampler {
    /// `q` must lie in (0, 1]. `seed: None` uses OS entropy.
    pub fn new(n: usize, q: f64, seed: Option<u64>) -> Result<Self, DpError> {
        if !(q > 0.0 && q <= 1.0) {
            return Err(DpError::SampleRate(q));
        }
        Ok(PoissonSampler { n, q, rng: rng::stream(seed, Stream::Sampling) })
    }

    pub fn sample_rate(&self) -> f64 {
        self.q
    }

    /// Indices (increasing) of the records in the next batch.
    pub fn sample(&mut self) -> Vec<i64> {
        if self.q >= 1.0 {
            return (0..self.n as i64).collect();
        }
        let log1mq = (-self.q).ln_1p();
        let mut out = Vec::with_capacity((self.q * self.n as f64 * 1.2) as usize + 8);
        let mut i: f64 = -1.0;
        loop {
            let u: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
            let gap = (u.ln() / log1mq).floor();
            i += 1.0 + gap;
            if i >= self.n as f64 {
                break;
            }
            out.push(i as i64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_increasing_and_in_range() {
        let mut s = PoissonSampler::new(1000, 0.05, Some(3)).unwrap();
        for _ in 0..50 {
            let b = s.sample();
            assert!(b.windows(2).all(|w| w[0] < w[1]));
            assert!(b.iter().all(|i| (0..1000).contains(i)));
        }
    }

    #[test]
    fn rejects_bad_rate() {
        assert!(PoissonSampler::new(10, 0.0, Some(1)).is_err());
        assert!(PoissonSampler::new(10, 1.5, Some(1)).is_err());
        assert!(PoissonSampler::new(10, f64::NAN, Some(1)).is_err());
        assert_eq!(PoissonSampler::new(7, 1.0, Some(1)).unwrap().sample().len(), 7);
    }

    #[test]
    fn same_seed_same_batches() {
        let mut a = PoissonSampler::new(500, 0.1, Some(9)).unwrap();
        let mut b = PoissonSampler::new(500, 0.1, Some(9)).unwrap();
        for _ in 0..10 {
            assert_eq!(a.sample(), b.sample());
        }
    }
}
