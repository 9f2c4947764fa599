//! Collectives: triggers g(x), strategies h(x, y), several collectives, coordination noise,
//! success metrics.
//!
//! - [`Trigger`] (patch, grid, feature offset, token at a position or inserted every k-th) and
//!   [`check_tokens`] (planted tokens absent from a text vocabulary) — `trigger.rs`;
//! - [`Strategy`] (feature-label, feature-only, erasing) and [`MembersFrom`] — `strategy.rs`;
//! - [`CoordinationNoise`] (jitter, wrong target, dropout) — `noise.rs`;
//! - [`CollectiveSpec`], its string grammar [`COLLECTIVE_SPEC_HELP`] and serde form — `spec.rs`;
//! - [`plant`]: members drawn (exactly ⌊αN⌋, disjoint across collectives) and their records
//!   rewritten in place in a copy of the train set — `plant.rs`;
//! - [`success`], [`success_many`], [`triggered_test`], [`clopper_pearson`], [`xi_estimate`],
//!   [`xi_relaxed`] — `metrics.rs`.

mod error;
mod grammar;
mod metrics;
mod noise;
mod plant;
mod spec;
mod strategy;
mod trigger;

pub use error::CollectiveError;
pub use metrics::{
    clopper_pearson, on_signal_set, success, success_many, triggered_test, xi_estimate, xi_relaxed,
    MultiSuccessReport, Rate, SuccessReport, CONFIDENCE,
};
pub use noise::{floor_count, CoordinationNoise, Deviation, DEFAULT_JITTER_PIXELS, DEFAULT_JITTER_RELATIVE};
pub use plant::{plant, CollectiveInfo, Planted};
pub use spec::{validate_against, CollectiveSpec, COLLECTIVE_SPEC_HELP, DEFAULT_STRATEGY};
pub use strategy::{MembersFrom, Strategy};
pub use trigger::{check_tokens, Trigger};
