//! Collective action in a playlist-continuation recommender (Baumann & Mendler-Dünner 2024,
//! arXiv 2404.04269) under DP-SGD: a synthetic MPD-like corpus ([`synth`]), the MF-Transformer
//! next-song model with exact per-playlist gradients ([`model`]), the collectives' insertion
//! strategies ([`strategy`]), the test protocol and amplification ([`metric`]), and training with
//! one playlist = one privacy record ([`experiment`]). Notes: `docs/recsys.md`,
//! ../shared/recsys-notes.md.

pub mod experiment;
pub mod metric;
pub mod model;
pub mod plot;
pub mod strategy;
pub mod synth;

/// Errors of the recommender experiments.
#[derive(Debug, thiserror::Error)]
pub enum RecsysError {
    #[error("invalid recsys setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("privacy accounting or sampling: {0}")]
    Accountant(String),
}
