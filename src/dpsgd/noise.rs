//! Gaussian noise for DP-SGD from a cryptographically secure generator.
//!
//! A run draws a 256-bit key from its `Stream::Noise` ChaCha20 stream (OS entropy when the run has
//! no seed). Draw number t (one per step) fills a vector in chunks of [`NOISE_CHUNK`] coordinates;
//! chunk j uses ChaCha20 keyed by that key with stream id `(t << 24) | j`, so chunks are
//! independent, are generated in parallel with rayon, and the result does not depend on the
//! number of threads. Normals come from `rand_distr::StandardNormal` (the ziggurat method of
//! Marsaglia & Tsang 2000, in f64), scaled by the standard deviation and rounded to f32.
//! libtorch's generator is never used (it is neither secure nor per-run).

use crate::rng::{self, ChaCha20Rng, Stream};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Coordinates per independent ChaCha20 stream.
pub const NOISE_CHUNK: usize = 1 << 15;

#[derive(Debug, Clone)]
pub struct NoiseSource {
    key: [u8; 32],
    draws: u64,
}

impl NoiseSource {
    /// A source keyed from the run seed (`None`: OS entropy).
    pub fn new(seed: Option<u64>) -> Self {
        let mut key = [0u8; 32];
        rng::stream(seed, Stream::Noise).fill_bytes(&mut key);
        NoiseSource { key, draws: 0 }
    }

    /// Fill `out` with i.i.d. N(0, std²) values; each call uses a fresh draw number.
    pub fn fill(&mut self, out: &mut [f32], std: f64) {
        let t = self.draws;
        self.draws += 1;
        assert!(t < (1 << 40) && out.len() / NOISE_CHUNK < (1 << 24), "noise stream ids exhausted");
        let key = self.key;
        out.par_chunks_mut(NOISE_CHUNK).enumerate().for_each(|(j, chunk)| {
            let mut r = ChaCha20Rng::from_seed(key);
            r.set_stream((t << 24) | j as u64);
            for v in chunk.iter_mut() {
                let z: f64 = StandardNormal.sample(&mut r);
                *v = (z * std) as f32;
            }
        });
    }

    /// Overwrite a contiguous f32 CPU tensor with N(0, std²) noise, in place (no copy).
    pub fn fill_tensor(&mut self, t: &mut Tensor, std: f64) {
        assert!(t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous(), "noise target must be a contiguous f32 CPU tensor");
        let n = t.numel();
        if n == 0 {
            return;
        }
        // SAFETY: `t` is a contiguous f32 CPU tensor with `n` elements that we hold a mutable
        // reference to; nothing else reads or writes it while the slice lives.
        let buf = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) };
        self.fill(buf, std);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_does_not_change_noise() {
        let mut a = vec![0f32; 3 * NOISE_CHUNK + 17];
        let mut b = a.clone();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| NoiseSource::new(Some(5)).fill(&mut a, 2.0));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| NoiseSource::new(Some(5)).fill(&mut b, 2.0));
        assert_eq!(a, b);
    }

    #[test]
    fn successive_draws_and_chunks_differ() {
        let mut s = NoiseSource::new(Some(1));
        let mut a = vec![0f32; 2 * NOISE_CHUNK];
        let mut b = a.clone();
        s.fill(&mut a, 1.0);
        s.fill(&mut b, 1.0);
        assert_ne!(a, b);
        assert_ne!(a[..16], a[NOISE_CHUNK..NOISE_CHUNK + 16]);
    }

    #[test]
    fn fills_tensor_in_place() {
        let mut t = Tensor::zeros([1000], (Kind::Float, Device::Cpu));
        NoiseSource::new(Some(2)).fill_tensor(&mut t, 3.0);
        let std = t.std(true).double_value(&[]);
        assert!((std - 3.0).abs() < 0.3, "std {std}");
    }
}
