//! The collective spec: one struct, parsed from the CLI's compact string (`FromStr`) and from
//! TOML (serde, unknown fields rejected), printed back by `Display` (round-trips).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CollectiveError;
use super::grammar::{parse_f64, parse_i64, KvList};
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
                       token:every=K:token=T         token id T inserted at every K-th position
                                                     (text: T must be an unseen id, not a word)
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
pub fn validate_against(
    specs: &[CollectiveSpec],
    example_shape: &[i64],
    n: i64,
    num_classes: i64,
) -> Result<(), CollectiveError> {
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
        return Err(CollectiveError::AlphaSumTooLarge {
            sum,
            alphas: specs.iter().map(|s| s.alpha).collect(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::noise::Deviation;
    use proptest::prelude::{any, prop_assert_eq, prop_oneof, proptest, Strategy as PropStrategy};

    #[test]
    fn help_example_parses_with_defaults() {
        let example = COLLECTIVE_SPEC_HELP.lines().last().unwrap().trim_start_matches("Example: ");
        let s: CollectiveSpec = example.parse().unwrap();
        assert_eq!(s.alpha, 0.01);
        assert_eq!(s.target, 0);
        assert_eq!(s.trigger, Trigger::Patch { size: 3, row: -1, col: -1, value: 1.0 });
        assert_eq!(s.strategy, Strategy::FeatureLabel);
        assert_eq!(s.members_from, MembersFrom::NotTarget);
        assert_eq!(
            s.noise,
            Some(CoordinationNoise { fraction: 0.1, kind: Deviation::Jitter, magnitude: None })
        );
        assert_eq!(s.to_string().parse::<CollectiveSpec>().unwrap(), s);
        // Feature-only defaults to members from the target class.
        let fo: CollectiveSpec =
            "alpha=0.1,target=2,trigger=token:position=0:token=5,strategy=feature-only".parse().unwrap();
        assert_eq!(fo.members_from, MembersFrom::Target);
        let any: CollectiveSpec =
            "alpha=0.1,target=2,trigger=token:position=0:token=5,strategy=erasing,members_from=any"
                .parse()
                .unwrap();
        assert_eq!(any.members_from, MembersFrom::Any);
        assert_eq!(any.strategy, Strategy::Erasing);
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let base = "target=0,trigger=patch:size=3:pos=br:value=1";
        let e = format!("alpha=1.5,{base}").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::AlphaOutOfRange { alpha, .. } if alpha == 1.5));
        assert!(e.to_string().contains("1.5"));
        let e = format!("alpha=0,{base}").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::AlphaOutOfRange { .. }));
        let e = format!("alpha=0.1,{base},colour=red").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::UnknownKey { ref key, .. } if key == "colour"));
        let e = "alpha=0.1,trigger=patch:size=3:pos=br:value=1".parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::MissingKey { ref key, .. } if key == "target"));
        let e = format!("alpha=0.1,{base},alpha=0.2").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::DuplicateKey { ref key, .. } if key == "alpha"));
        let e = format!("alpha=abc,{base}").parse::<CollectiveSpec>().unwrap_err();
        assert!(
            matches!(e, CollectiveError::BadValue { ref key, ref value, .. } if key == "alpha" && value == "abc")
        );
        let e = format!("alpha=0.1,{base},noise=1.5:dropout").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::NoiseOutOfRange { nu } if nu == 1.5));
        let e = format!("alpha=0.1,{base},noise=0.5:dropout=2").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::BadValue { ref key, .. } if key == "noise"));
        let e = format!("alpha=0.1,{base},noise=0.5:jitter=0.5").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::BadJitter { .. }), "{e}");
        let e = format!("alpha=0.1,{base},strategy=bribe").parse::<CollectiveSpec>().unwrap_err();
        assert!(
            matches!(e, CollectiveError::BadValue { ref key, ref value, .. } if key == "strategy" && value == "bribe")
        );
        let e = format!("alpha=0.1,{base},members_from=some").parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::BadValue { ref key, .. } if key == "members_from"));
        let e =
            "alpha=0.1,target=-1,trigger=patch:size=3:pos=br:value=1".parse::<CollectiveSpec>().unwrap_err();
        assert!(matches!(e, CollectiveError::BadValue { ref key, .. } if key == "target"));
    }

    #[test]
    fn toml_form_round_trips_and_rejects_unknown_fields() {
        #[derive(serde::Deserialize)]
        struct File {
            collective: Vec<CollectiveSpec>,
        }
        let text = r#"
            [[collective]]
            alpha = 0.05
            target = 1
            trigger = { kind = "grid", spacing = 4, amplitude = 0.25 }
            noise = { fraction = 0.2, kind = "wrong-target" }

            [[collective]]
            alpha = 0.02
            target = 3
            strategy = "feature-only"
            trigger = { kind = "patch", size = 2, row = 0, col = 0, value = 0.0 }
        "#;
        let f: File = toml::from_str(text).unwrap();
        assert_eq!(f.collective.len(), 2);
        assert_eq!(f.collective[0].members_from, MembersFrom::NotTarget);
        assert_eq!(f.collective[1].members_from, MembersFrom::Target);
        assert_eq!(f.collective[0].to_string(), "alpha=0.05,target=1,trigger=grid:spacing=4:amplitude=0.25,strategy=feature-label,members_from=not-target,noise=0.2:wrong-target");
        for s in &f.collective {
            let back: CollectiveSpec = toml::from_str(&toml::to_string(s).unwrap()).unwrap();
            assert_eq!(&back, s);
        }
        let bad = "alpha = 0.05\ntarget = 1\nbeta = 2\ntrigger = { kind = \"grid\", spacing = 4, amplitude = 0.25 }\n";
        let e = toml::from_str::<CollectiveSpec>(bad).unwrap_err().to_string();
        assert!(e.contains("beta"), "{e}");
        let bad_alpha =
            "alpha = 2.0\ntarget = 1\ntrigger = { kind = \"grid\", spacing = 4, amplitude = 0.25 }\n";
        let e = toml::from_str::<CollectiveSpec>(bad_alpha).unwrap_err().to_string();
        assert!(e.contains("alpha = 2"), "{e}");
    }

    #[test]
    fn validate_against_data() {
        let s: CollectiveSpec = "alpha=0.01,target=0,trigger=patch:size=3:pos=br:value=1".parse().unwrap();
        assert!(
            matches!(validate_against(std::slice::from_ref(&s), &[1, 8, 8], 50, 10), Err(CollectiveError::NoMembers { alpha, n: 50, .. }) if alpha == 0.01)
        );
        assert!(validate_against(std::slice::from_ref(&s), &[1, 8, 8], 100, 10).is_ok());
        assert!(matches!(
            validate_against(std::slice::from_ref(&s), &[1, 2, 2], 100, 10),
            Err(CollectiveError::TriggerDoesNotFit { .. })
        ));
        let t: CollectiveSpec = "alpha=0.6,target=10,trigger=patch:size=3:pos=br:value=1".parse().unwrap();
        assert!(matches!(
            validate_against(std::slice::from_ref(&t), &[1, 8, 8], 100, 10),
            Err(CollectiveError::TargetOutOfRange { target: 10, num_classes: 10, .. })
        ));
        let u: CollectiveSpec = "alpha=0.6,target=1,trigger=patch:size=3:pos=br:value=1".parse().unwrap();
        assert!(matches!(
            validate_against(&[u.clone(), u], &[1, 8, 8], 100, 10),
            Err(CollectiveError::AlphaSumTooLarge { .. })
        ));
    }

    fn arb_trigger() -> impl PropStrategy<Value = Trigger> {
        prop_oneof![
            (1i64..6, -3i64..4, -3i64..4, 0.0f64..=1.0).prop_map(|(size, row, col, value)| Trigger::Patch {
                size,
                row,
                col,
                value
            }),
            (1i64..9, 0.001f64..1.0, any::<bool>())
                .prop_map(|(spacing, a, neg)| Trigger::Grid { spacing, amplitude: if neg { -a } else { a } }),
            (0usize..50, 0.01f64..10.0)
                .prop_map(|(feature, shift_std)| Trigger::FeatureOffset { feature, shift_std }),
            (0i64..100, 0i64..50_000).prop_map(|(position, token)| Trigger::Token { position, token }),
        ]
    }

    proptest! {
        #[test]
        fn spec_string_round_trips(alpha in 1e-6f64..0.999, target in 0i64..20, trigger in arb_trigger(),
                                   strat in 0usize..3, from in 0usize..4, noise in proptest::option::of((0.0f64..=1.0, 0usize..3))) {
            let strategy = [crate::collective::Strategy::FeatureLabel, crate::collective::Strategy::FeatureOnly, crate::collective::Strategy::Erasing][strat];
            let members_from = [None, Some(MembersFrom::NotTarget), Some(MembersFrom::Any), Some(MembersFrom::Target)][from];
            let noise = noise.map(|(fraction, k)| CoordinationNoise { fraction, kind: [Deviation::Jitter, Deviation::WrongTarget, Deviation::Dropout][k], magnitude: None });
            let spec = CollectiveSpec::new(alpha, target, trigger, Some(strategy), members_from, noise).unwrap();
            let back: CollectiveSpec = spec.to_string().parse().unwrap();
            prop_assert_eq!(&back, &spec);
            // TOML (serde_json without `float_roundtrip` may be off by one ulp on parsing).
            let text = toml::to_string(&spec).unwrap();
            prop_assert_eq!(toml::from_str::<CollectiveSpec>(&text).unwrap(), spec);
        }
    }
}
