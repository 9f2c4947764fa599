//! Empirical privacy audit (ε lower bounds from canaries) and membership inference.
//!
//! - [`stats`]: the statistics — ε lower bounds from error rates with Clopper–Pearson bounds
//!   (multi-run, Jagielski, Ullman & Oprea 2020), from the number of correct guesses (one-run,
//!   Steinke, Nasr & Jagielski 2023), ROC AUC (Mann–Whitney), full-batch Gaussian ε.
//! - [`canary`]: canaries built from a collective's trigger (g(x) relabelled y*), a DP-SGD loop
//!   with a *fixed* sampling rate and normaliser (so the trained mechanism is exactly the one the
//!   accountant analyses under add/remove neighbours), the multi-run and one-run audits.
//! - [`mia`]: membership inference — loss threshold (cheap) and LiRA (Carlini et al. 2022,
//!   offline and online from the same shadow models) — with and without a collective.
//!
//! The accountant's ε is *not* computed here: reports carry an `accountant_epsilon` that the
//! caller fills in (the CLI uses `crate::accountant`), so audit and accountant stay independent
//! and each checks the other. Every audited bound must satisfy `epsilon_lb ≤ accountant ε`; a
//! violation (beyond the stated confidence) means a bug in the trainer or the accountant.
//!
//! All randomness (seeds of runs, canary inclusion, canary labels, shadow subsets) comes from
//! `crate::rng::stream(seed, Stream::Audit)`; training draws its own streams from the run seed.

pub mod canary;
pub mod mia;
pub mod stats;
pub mod steer;

pub use canary::{
    make_canaries, margin_scores, multi_run, one_run, train_fixed_rate, CanaryLabel, MultiRunConfig,
    MultiRunReport, OneRunChoice, OneRunConfig, OneRunReport, TrainSpec,
};
pub use mia::{mia, MiaConfig, MiaReport};
pub use stats::{auc, multi_run_bound, one_run_eps_lb, one_run_p_value, RateBound, ThresholdRule};

/// Errors of the audit module. Messages name the setting or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("audit data: {0}")]
    Data(String),
    #[error(transparent)]
    Collective(#[from] crate::collective::CollectiveError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Fit(#[from] crate::train::fit::FitError),
    #[error(transparent)]
    Dp(#[from] crate::dpsgd::DpError),
    #[error("libtorch error: {0}")]
    Tch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, AuditError>;

/// Independent seeds for `n` runs from the audit stream of `seed` (`None`: OS entropy); each
/// `purpose` (a small number) gets its own ChaCha20 stream id, so purposes never share seeds.
pub fn run_seeds(seed: Option<u64>, purpose: u64, n: usize) -> Vec<u64> {
    use rand::Rng;
    let mut rng = crate::rng::stream(seed, crate::rng::Stream::Audit);
    rng.set_stream(((purpose + 1) << 8) | crate::rng::Stream::Audit as u64);
    (0..n).map(|_| rng.next_u64()).collect()
}
