//! The one source of randomness: per-run ChaCha20 streams (rand_chacha), never libtorch's global RNG.
//!
//! Every random choice (initialisation, shuffling, collective membership, Poisson sampling,
//! privacy noise) draws from a [`ChaCha20Rng`] derived from the run seed and a purpose label, so
//! cells running in parallel are deterministic and independent. Without a seed, streams are
//! seeded from OS entropy (`SysRng`), as privacy noise for real runs must be.

use rand::SeedableRng;
pub use rand_chacha::ChaCha20Rng;

/// Purposes get separate streams so that, e.g., changing the model does not change the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Init = 1,
    Shuffle = 2,
    Collective = 3,
    Sampling = 4,
    Noise = 5,
    Audit = 6,
    Data = 7,
}

/// A ChaCha20 stream for `purpose`: deterministic from `seed` when given, else from OS entropy.
pub fn stream(seed: Option<u64>, purpose: Stream) -> ChaCha20Rng {
    match seed {
        Some(s) => {
            let mut rng = ChaCha20Rng::seed_from_u64(s);
            rng.set_stream(purpose as u64);
            rng
        }
        None => {
            let mut key = [0u8; 32];
            getrandom_fill(&mut key);
            ChaCha20Rng::from_seed(key)
        }
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    use rand::TryRng;
    rand::rngs::SysRng.try_fill_bytes(buf).expect("the operating system's entropy source failed");
}
