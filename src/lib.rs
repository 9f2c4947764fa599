//! crowdout — algorithmic collective action under differential privacy.
//!
//! Data flows one way: [`data`] → [`collective`] (modified train set, triggered test set) →
//! [`models`] + [`dpsgd`] (training, with the [`accountant`] tracking ε) → metrics → [`sweep`]
//! rows → [`report`]. [`accountant`] and [`bounds`] are pure math with no torch dependency.
//! See `docs/architecture.md` and `../shared/DESIGN.md`.

pub mod accountant;
pub mod audit;
pub mod bounds;
pub mod collective;
pub mod data;
pub mod device;
pub mod dpsgd;
pub mod hardware;
pub mod malloc;
pub mod models;
pub mod parallel;
pub mod params;
pub mod provenance;
pub mod recsys;
pub mod report;
pub mod rng;
pub mod simd;
pub mod sweep;
pub mod train;
