//! What a run records about where it came from: git commit, crate and libtorch versions, host.

use serde::{Deserialize, Serialize};

/// Provenance of a run, stored in every run record and results file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// `git rev-parse HEAD` at build time ("unknown" outside a checkout).
    pub git_commit: String,
    pub crowdout_version: String,
    pub tch_version: String,
    /// The libtorch version the binary was built against (the pin torch-sys checks).
    pub libtorch_version: String,
    pub threads: i32,
    pub cuda_available: bool,
}

impl Provenance {
    pub fn collect() -> Self {
        Self {
            git_commit: env!("CROWDOUT_GIT_COMMIT").to_string(),
            crowdout_version: env!("CARGO_PKG_VERSION").to_string(),
            tch_version: "0.26.0".to_string(),
            libtorch_version: "2.13.0".to_string(),
            threads: tch::get_num_threads(),
            cuda_available: tch::Cuda::is_available(),
        }
    }
}
