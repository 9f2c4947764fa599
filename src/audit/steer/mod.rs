//! The steerability audit (`crowdout audit steerability`): per privacy arm, the critical mass
//! α*(S*) at which the mean success reaches S*, and α₅₀ at which half the trainings are steered,
//! each with a 95 % profile-likelihood interval, from an adaptive sequential design on log α.
//!
//! Rooms: [`fit`] the dose–response fit and its intervals, [`design`] where the next runs go and
//! when to stop, [`analysis`] rows → per-arm estimates and `critical_mass.csv` (these three are
//! pure: no torch), [`spec`] the spec file, [`run`] the resumable driver. See docs/steerability.md.

pub mod analysis;
pub mod design;
pub mod fit;
pub mod run;
pub mod spec;

pub use analysis::{critical_mass_csv, estimate_all, ArmEstimate, ArmKey, Threshold};
pub use fit::{fit_crossing, Crossing, Point};
pub use run::{plan_path, run_steer, SteerOptions, SteerSummary};
pub use spec::{SteerSettings, SteerSpec};
