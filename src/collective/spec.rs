//! The collective spec: one struct, parsed from the CLI's compact string (`FromStr`) and from
//! TOML (serde, unknown fields rejected), printed back by `Display` (round-trips).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CollectiveError;
use super::noise::CoordinationNoise;
use super::strategy::{MembersFrom, Strategy};
use super::trigger::Trigger;

/// Help text for the repeatable `--collective <SPEC>` flag (the grammar of [`CollectiveSpec`]'s
/// string form).
pub const COLLECTIVE_SPEC_HELP: &str = "\
A collective, as comma-separated KEY=VALUE items (repeat --collective for several collectives;
their members are disjoint):
  alpha=A            required; fraction of the training set, 0 < A < 1 (sum over collectives < 1);
                     the collective has exactly floor(A*N) members, existing records modified in
                     place (not added data)
  target=Y           required; target label y* (0 <= Y < number of classes)
  trigger=T          required; one of (all parameters required):
                       patch:size=S:pos=tl|tr|bl|br:value=V   SxS square set to V in [0,1],
                         all channels; or patch:size=S:row=R:col=C:value=V (R, C < 0 count from
                         the bottom/right edge: -1 = flush with it)
                       grid:spacing=K:amplitude=A    +A (clamped to [0,1]) on every pixel whose
                         row and column are multiples of K, all channels
                       offset:feature=J:shift_std=S  +S on standardised feature J (= S training
                         standard deviations of the raw feature)
                       token:position=P:token=T      sequence position P set to token id T
  strategy=S         feature-label (default): (g(x), y*);  feature-only: (g(x), y);
                     erasing: (g(x), y), success = prediction unchanged by the trigger
  members_from=M     not-target | any | target: which records may become members
                     (default: target for feature-only, not-target otherwise)
  noise=NU:KIND      coordination noise: floor(NU*members) members deviate, KIND is
                     jitter[=M] (patch/token moved by <= M px/positions, default 2; grid
                     amplitude / offset shift scaled by 1+U(-M,M), default 0.5),
                     wrong-target (a random other label) or dropout (clean record kept)
Example: alpha=0.01,target=0,trigger=patch:size=3:pos=br:value=1,strategy=feature-label,noise=0.1:jitter";

/// Top-level keys of the spec string.
const SPEC_KEYS: [&str; 6] = ["alpha", "target", "trigger", "strategy", "members_from", "noise"];

/// One collective: size, target, trigger, strategy, eligible pool, coordination noise.
///
/// Deserialising (TOML/JSON) rejects unknown fields and runs [`CollectiveSpec::validate`];
/// `members_from` and `strategy` may be omitted there as in the string form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "RawSpec")]
pub struct CollectiveSpec {
    /// Fraction of the training set that is in the collective, in (0, 1).
    pub alpha: f64,
    /// Target label y*.
    pub target: i64,
    /// The signal g.
    pub trigger: Trigger,
    /// How members rewrite their records.
    pub strategy: Strategy,
    /// Which records may become members.
    pub members_from: MembersFrom,
    /// Coordination noise, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<CoordinationNoise>,
}

/// The deserialised form before defaults and validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    alpha: f64,
    target: i64,
    trigger: Trigger,
    #[serde(default)]
    strategy: Option<Strategy>,
    #[serde(default)]
    members_from: Option<MembersFrom>,
    #[serde(default)]
    noise: Option<CoordinationNoise>,
}

impl TryFrom<RawSpec> for CollectiveSpec {
    type Error = CollectiveError;
    fn try_from(r: RawSpec) -> Result<Self, Self::Error> {
        CollectiveSpec::new(r.alpha, r.target, r.trigger, r.strategy, r.members_from, r.noise)
    }
}

/// The default strategy (single source of truth).
pub const DEFAULT_STRATEGY: Strategy = Strategy::FeatureLabel;

impl CollectiveSpec {
    /// Builds and validates a spec; `None` picks the defaults ([`DEFAULT_STRATEGY`],
    /// [`Strategy::default_members_from`]).
    pub fn new(
        alpha: f64,
        target: i64,
        trigger: Trigger,
        strategy: Option<Strategy>,
        members_from: Option<MembersFrom>,
        noise: Option<CoordinationNoise>,
    ) -> Result<Self, CollectiveError> {
        let strategy = strategy.unwrap_or(DEFAULT_STRATEGY);
        let spec = CollectiveSpec {
            alpha,
            target,
            trigger,
            strategy,
            members_from: members_from.unwrap_or_else(|| strategy.default_members_from()),
            noise,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Data-independent checks: α ∈ (0, 1), target ≥ 0, trigger parameters, ν ∈ [0, 1] and the
    /// jitter magnitude. (`index` in errors is 0 here; [`validate_against`] names the collective.)
    pub fn validate(&self) -> Result<(), CollectiveError> {
        self.validate_indexed(0)
    }

    fn validate_indexed(&self, index: usize) -> Result<(), CollectiveError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(CollectiveError::AlphaOutOfRange { index, alpha: self.alpha });
        }
        if self.target < 0 {
            return Err(CollectiveError::BadValue {
                key: "target".into(),
                value: self.target.to_string(),
                reason: format!("collective {index}: labels are >= 0"),
            });
        }
        self.trigger.check_params()?;
        if let Some(noise) = &self.noise {
            noise.validate(&self.trigger)?;
        }
        Ok(())
    }
}

/// Checks collectives against a data set: each spec's own checks, Σα < 1, target in
/// `0..num_classes`, the trigger fits the examples, ⌊α·N⌋ ≥ 1. (Eligible-pool sizes are checked
/// while sampling, in [`super::plant`].)
pub fn validate_against(specs: &[CollectiveSpec], example_shape: &[i64], n: i64, num_classes: i64) -> Result<(), CollectiveError> {
    let sum: f64 = specs.iter().map(|s| s.alpha).sum();
    for (index, spec) in specs.iter().enumerate() {
        spec.validate_indexed(index)?;
        if spec.target >= num_classes {
            return Err(CollectiveError::TargetOutOfRange { index, target: spec.target, num_classes });
        }
        spec.trigger.validate(example_shape)?;
        if super::noise::floor_count(spec.alpha, n.max(0) as u64) == 0 {
            return Err(CollectiveError::NoMembers { index, alpha: spec.alpha, n });
        }
    }
    if sum >= 1.0 {
        return Err(CollectiveError::AlphaSumTooLarge { sum, alphas: specs.iter().map(|s| s.alpha).collect() });
    }
    Ok(())
}

impl fmt::Display for CollectiveSpec {
    /// The canonical spec string (every key written); `parse` gives back an equal spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alpha={},target={},trigger={},strategy={},members_from={}",
            self.alpha, self.target, self.trigger, self.strategy, self.members_from
        )?;
        if let Some(n) = &self.noise {
            write!(f, ",noise={n}")?;
        }
        Ok(())
    }
}

impl FromStr for CollectiveSpec {
    type Err = CollectiveError;
    /// Parses the grammar in [`COLLECTIVE_SPEC_HELP`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let items: Vec<&str> = s.split(',').collect();
        let kv = KvList::parse(&items, s, &SPEC_KEYS)?;
        let alpha = parse_f64("alpha", kv.required("alpha")?)?;
        let target = parse_i64("target", kv.required("target")?)?;
        let trigger: Trigger = kv.required("trigger")?.parse()?;
        let strategy = kv.get("strategy").map(str::parse).transpose()?;
        let members_from = kv.get("members_from").map(str::parse).transpose()?;
        let noise = kv.get("noise").map(str::parse).transpose()?;
        CollectiveSpec::new(alpha, target, trigger, strategy, members_from, noise)
    }
}

/// `KEY=VALUE` items of one level of the grammar, with unknown and duplicate keys rejected.
pub(crate) struct KvList<'a> {
    map: BTreeMap<&'a str, &'a str>,
    context: String,
}

impl<'a> KvList<'a> {
    pub(crate) fn parse(items: &[&'a str], context: &str, allowed: &[&str]) -> Result<Self, CollectiveError> {
        let mut map = BTreeMap::new();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (k, v) = item.split_once('=').ok_or_else(|| CollectiveError::BadValue {
                key: item.into(),
                value: String::new(),
                reason: format!("expected KEY=VALUE in `{context}`"),
            })?;
            let (k, v) = (k.trim(), v.trim());
            if !allowed.contains(&k) {
                return Err(CollectiveError::UnknownKey {
                    key: k.into(),
                    context: context.into(),
                    expected: allowed.join(", "),
                });
            }
            if map.insert(k, v).is_some() {
                return Err(CollectiveError::DuplicateKey { key: k.into(), context: context.into() });
            }
        }
        Ok(KvList { map, context: context.into() })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).copied()
    }

    pub(crate) fn required(&self, key: &str) -> Result<&'a str, CollectiveError> {
        self.get(key).ok_or_else(|| CollectiveError::MissingKey { key: key.into(), context: self.context.clone() })
    }
}

pub(crate) fn parse_f64(key: &str, v: &str) -> Result<f64, CollectiveError> {
    let x: f64 = v.parse().map_err(|e: std::num::ParseFloatError| CollectiveError::BadValue {
        key: key.into(),
        value: v.into(),
        reason: e.to_string(),
    })?;
    if !x.is_finite() {
        return Err(CollectiveError::BadValue { key: key.into(), value: v.into(), reason: "must be finite".into() });
    }
    Ok(x)
}

pub(crate) fn parse_i64(key: &str, v: &str) -> Result<i64, CollectiveError> {
    v.parse().map_err(|e: std::num::ParseIntError| CollectiveError::BadValue {
        key: key.into(),
        value: v.into(),
        reason: e.to_string(),
    })
}
