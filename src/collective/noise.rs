//! Coordination noise ("Sync or Sink"): a fraction ν of a collective's members does not follow
//! the plan.
//!
//! Exactly ⌊ν·m⌋ of the collective's m members deviate (drawn uniformly without replacement
//! from the members, with the run's `Stream::Collective`), all in the same way:
//! - [`Deviation::Jitter`]: the member plants a perturbed trigger (see
//!   [`super::Trigger::jittered`]: patch / token moved by a random non-zero offset of at most
//!   `magnitude` pixels / positions; grid amplitude or offset shift scaled by `1 + u`,
//!   `u ~ Uniform[-magnitude, magnitude]`), with the strategy's label;
//! - [`Deviation::WrongTarget`]: the member plants the correct trigger but writes a label drawn
//!   uniformly from the labels other than the one the strategy would write (≠ y* for
//!   feature-label; ≠ its own label for feature-only and erasing);
//! - [`Deviation::Dropout`]: the member keeps its clean record (x, y).
//!
//! Deviators stay counted as members (α is the planned size); the run record lists how many
//! deviated.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CollectiveError;
use super::grammar::parse_f64;
use super::trigger::{check_jitter, Trigger};

/// Default jitter for patch and token triggers: up to this many pixels / positions.
pub const DEFAULT_JITTER_PIXELS: f64 = 2.0;
/// Default jitter for grid and offset triggers: relative perturbation of the amplitude / shift.
pub const DEFAULT_JITTER_RELATIVE: f64 = 0.5;

/// How deviating members deviate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Deviation {
    /// Plant a jittered trigger.
    Jitter,
    /// Write a random wrong label.
    WrongTarget,
    /// Keep the clean record.
    Dropout,
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deviation::Jitter => "jitter",
            Deviation::WrongTarget => "wrong-target",
            Deviation::Dropout => "dropout",
        })
    }
}

impl FromStr for Deviation {
    type Err = CollectiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jitter" => Ok(Deviation::Jitter),
            "wrong-target" => Ok(Deviation::WrongTarget),
            "dropout" => Ok(Deviation::Dropout),
            _ => Err(CollectiveError::BadValue {
                key: "noise".into(),
                value: s.into(),
                reason: "expected jitter, wrong-target or dropout".into(),
            }),
        }
    }
}

/// Coordination noise of one collective.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CoordinationNoise {
    /// ν ∈ [0, 1]: the fraction of members that deviate (⌊ν·m⌋ exactly).
    pub fraction: f64,
    /// How they deviate.
    pub kind: Deviation,
    /// Jitter size (only for `kind = jitter`); `None` = [`DEFAULT_JITTER_PIXELS`] for patch /
    /// token triggers, [`DEFAULT_JITTER_RELATIVE`] for grid / offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
}

impl CoordinationNoise {
    /// The jitter magnitude in effect for `trigger`.
    pub fn jitter_magnitude(&self, trigger: &Trigger) -> f64 {
        self.magnitude.unwrap_or(match trigger {
            Trigger::Patch { .. } | Trigger::Token { .. } | Trigger::TokenEvery { .. } => {
                DEFAULT_JITTER_PIXELS
            }
            Trigger::Grid { .. } | Trigger::FeatureOffset { .. } => DEFAULT_JITTER_RELATIVE,
        })
    }

    /// Checks ν ∈ [0, 1] and, for jitter, the magnitude against the trigger.
    pub fn validate(&self, trigger: &Trigger) -> Result<(), CollectiveError> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(CollectiveError::NoiseOutOfRange { nu: self.fraction });
        }
        match self.kind {
            Deviation::Jitter => check_jitter(trigger, self.jitter_magnitude(trigger)),
            _ if self.magnitude.is_some() => Err(CollectiveError::BadValue {
                key: "noise".into(),
                value: self.to_string(),
                reason: "a magnitude only applies to jitter".into(),
            }),
            _ => Ok(()),
        }
    }

    /// ⌊ν·m⌋ (with a 1e-9 allowance so that e.g. ν = 0.3, m = 10 gives 3, not 2).
    pub fn deviators(&self, members: u64) -> u64 {
        floor_count(self.fraction, members)
    }
}

/// ⌊p·n⌋ computed so that decimal fractions that are exact in intent (0.29 · 100) are not lost
/// to binary rounding: floor(p·n + 1e-9).
pub fn floor_count(p: f64, n: u64) -> u64 {
    let v = (p * n as f64 + 1e-9).floor();
    if v <= 0.0 {
        0
    } else {
        (v as u64).min(n)
    }
}

impl fmt::Display for CoordinationNoise {
    /// Spec-string form: `FRACTION:KIND` or `FRACTION:jitter=MAGNITUDE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.fraction, self.kind)?;
        if let Some(m) = self.magnitude {
            write!(f, "={m}")?;
        }
        Ok(())
    }
}

impl FromStr for CoordinationNoise {
    type Err = CollectiveError;
    /// Parses `FRACTION:KIND` or `FRACTION:jitter=MAGNITUDE`. ν's range is checked here; the
    /// magnitude is checked against the trigger by [`CoordinationNoise::validate`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (frac, kind) = s.split_once(':').ok_or_else(|| CollectiveError::BadValue {
            key: "noise".into(),
            value: s.into(),
            reason: "expected FRACTION:jitter[=MAGNITUDE], FRACTION:wrong-target or FRACTION:dropout".into(),
        })?;
        let fraction = parse_f64("noise", frac)?;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(CollectiveError::NoiseOutOfRange { nu: fraction });
        }
        let (kind, magnitude) = match kind.split_once('=') {
            Some((k, m)) => (k, Some(parse_f64("noise jitter magnitude", m)?)),
            None => (kind, None),
        };
        let kind: Deviation = kind.parse()?;
        if magnitude.is_some() && kind != Deviation::Jitter {
            return Err(CollectiveError::BadValue {
                key: "noise".into(),
                value: s.into(),
                reason: "a magnitude only applies to jitter".into(),
            });
        }
        Ok(CoordinationNoise { fraction, kind, magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_count_is_exact_for_decimal_fractions() {
        assert_eq!(floor_count(0.29, 100), 29);
        assert_eq!(floor_count(0.3, 10), 3);
        assert_eq!(floor_count(0.01, 99), 0);
        assert_eq!(floor_count(0.015, 1000), 15);
        assert_eq!(floor_count(1.0, 7), 7);
        assert_eq!(floor_count(0.0, 7), 0);
    }

    #[test]
    fn parse_and_print() {
        for s in ["0.1:jitter", "0.25:jitter=3", "1:wrong-target", "0:dropout"] {
            let n: CoordinationNoise = s.parse().unwrap();
            assert_eq!(n.to_string(), s);
        }
        let n: CoordinationNoise = "0.1:jitter".parse().unwrap();
        let patch = Trigger::Patch { size: 2, row: 0, col: 0, value: 1.0 };
        let grid = Trigger::Grid { spacing: 2, amplitude: 0.1 };
        assert_eq!(n.jitter_magnitude(&patch), DEFAULT_JITTER_PIXELS);
        assert_eq!(n.jitter_magnitude(&grid), DEFAULT_JITTER_RELATIVE);
        assert!(n.validate(&patch).is_ok() && n.validate(&grid).is_ok());
        assert!(matches!("0.1".parse::<CoordinationNoise>(), Err(CollectiveError::BadValue { .. })));
        assert!(matches!(
            "-0.1:dropout".parse::<CoordinationNoise>(),
            Err(CollectiveError::NoiseOutOfRange { .. })
        ));
        assert!(
            matches!("0.1:sulk".parse::<CoordinationNoise>(), Err(CollectiveError::BadValue { ref value, .. }) if value == "sulk")
        );
        assert_eq!(n.deviators(25), 2);
    }
}
