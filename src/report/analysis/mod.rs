//! From result rows to what a report shows: panels (one per dataset / model / collective / clip),
//! privacy arms inside a panel, per-α aggregates over seeds, critical masses and bound checks.
//!
//! Aggregation over seeds: `success` is the mean over seeds; its band is the envelope of the
//! per-seed Clopper–Pearson intervals, `[min success_lo, max success_hi]`.
//! Critical mass α*(S*): the smallest grid α > 0 whose mean success ≥ S* (`grid`), and a
//! log-linear interpolation between that α and the grid α before it (`interp`):
//! `α* = exp(ln a₁ + (S* − s₁)/(s₂ − s₁)·(ln a₂ − ln a₁))`. When the first α > 0 already reaches
//! S* there is nothing to interpolate: `interp` = that α, reported as an upper bound (`≤`).
//!
//! [`panels`]: rows → panels → arms → per-α points and critical masses (what the tables and curves
//! show). [`configs`]: rows → configurations (everything but the seed) → statistics over seeds
//! and the bound verdicts (what the checks and sandwich plots show).

mod configs;
mod panels;

pub use configs::*;
pub use panels::*;
