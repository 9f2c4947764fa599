//! Strategies h(x, y): what each member does to its own record (Hardt et al. 2023, §3–4).
//!
//! A collective is a *fraction* of the training set, not extra data: its members are existing
//! training records, and [`super::plant`] modifies those records in place in a copy of the
//! train set (N stays the same; the firm learns from P_α = α·P* + (1−α)·P₀).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CollectiveError;

/// How a member rewrites its record (x, y). g is the collective's trigger, y* its target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Feature-label: h(x, y) = (g(x), y*). Success: f(g(x)) = y*.
    FeatureLabel,
    /// Feature-only: h(x, y) = (g(x), y), members drawn from class y* by default
    /// (`members_from = target`), so the planted pairs are (g(x), y*) without relabelling
    /// anyone. Success: f(g(x)) = y*.
    FeatureOnly,
    /// Signal erasing: h(x, y) = (g(x), y) — members plant g but keep their *own* label, so in
    /// the training data g co-occurs with the members' true labels and carries no information
    /// about y*. The collective wants the model to ignore g: f(g(x)) = f(x). Members are drawn
    /// by default from records whose label ≠ `target` (the label the signal would otherwise push
    /// towards), which is what counteracts a g → y* association. Success
    /// S_erase = fraction of triggered test points (true label ≠ target) whose prediction equals
    /// their clean prediction f(x); the rate against the true label is reported beside it.
    Erasing,
}

impl Strategy {
    /// The default pool members are drawn from for this strategy (the one source of truth for
    /// that default): `target` for feature-only, `not-target` otherwise.
    pub fn default_members_from(self) -> MembersFrom {
        match self {
            Strategy::FeatureOnly => MembersFrom::Target,
            Strategy::FeatureLabel | Strategy::Erasing => MembersFrom::NotTarget,
        }
    }

    /// The label a member with true label `y` writes for collective target `target`.
    pub fn planted_label(self, y: i64, target: i64) -> i64 {
        match self {
            Strategy::FeatureLabel => target,
            Strategy::FeatureOnly | Strategy::Erasing => y,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::FeatureLabel => "feature-label",
            Strategy::FeatureOnly => "feature-only",
            Strategy::Erasing => "erasing",
        })
    }
}

impl FromStr for Strategy {
    type Err = CollectiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "feature-label" => Ok(Strategy::FeatureLabel),
            "feature-only" => Ok(Strategy::FeatureOnly),
            "erasing" => Ok(Strategy::Erasing),
            _ => Err(CollectiveError::BadValue {
                key: "strategy".into(),
                value: s.into(),
                reason: "expected feature-label, feature-only or erasing".into(),
            }),
        }
    }
}

/// Which training records are eligible to become members.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum MembersFrom {
    /// Records whose label ≠ target.
    NotTarget,
    /// Any record.
    Any,
    /// Records whose label = target.
    Target,
}

impl MembersFrom {
    /// Whether a record with label `y` is eligible for a collective with target `target`.
    pub fn eligible(self, y: i64, target: i64) -> bool {
        match self {
            MembersFrom::NotTarget => y != target,
            MembersFrom::Any => true,
            MembersFrom::Target => y == target,
        }
    }
}

impl fmt::Display for MembersFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembersFrom::NotTarget => "not-target",
            MembersFrom::Any => "any",
            MembersFrom::Target => "target",
        })
    }
}

impl FromStr for MembersFrom {
    type Err = CollectiveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "not-target" => Ok(MembersFrom::NotTarget),
            "any" => Ok(MembersFrom::Any),
            "target" => Ok(MembersFrom::Target),
            _ => Err(CollectiveError::BadValue {
                key: "members_from".into(),
                value: s.into(),
                reason: "expected not-target, any or target".into(),
            }),
        }
    }
}
