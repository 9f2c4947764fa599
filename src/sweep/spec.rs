//! The sweep spec: a TOML file naming a grid of axes and one training section; its cells.
//!
//! ```toml
//! name = "mnist-patch"                      # results go to results/<name> unless [output] dir
//!
//! [grid]                                    # every axis must be a non-empty list
//! dataset = ["mnist"]
//! model = ["cnn"]
//! # opaque collective specs (parsed by the collective module), WITHOUT alpha; either strings or
//! # tables { name = "patch", spec = "..." } where name is a short label for reports
//! collectives = ["trigger=patch:size=3:pos=br:value=1,target=0,strategy=feature-label"]
//! alpha = [0.0, 0.001, 0.01, 0.1]           # 0 = no-collective baseline
//! privacy = ["none", "sigma=0", "eps=8", "eps=1"]   # none | eps=E | sigma=S (sigma=0: clip only)
//! clip = [1.0, 5.0]                         # required unless every privacy arm is "none"
//! seed = [0, 1, 2]
//!
//! [train]                                   # epochs, batch_size, lr required; the rest default
//! epochs = 5
//! batch_size = 256
//! lr = 0.1
//!
//! [output]
//! dir = "results/mnist-patch"
//! ```
//! Non-private cells do not clip, so the clip axis collapses for them (one cell, `clip` empty).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub(crate) use super::hash::canonical_json_of;
pub use super::hash::Cell;
pub use super::privacy::Privacy;
use super::SweepError;

/// One sweep: a name, a grid of axes and the training settings shared by every cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSpec {
    /// Names the sweep (and the default output folder `results/<name>`); not part of a cell's hash.
    pub name: String,
    pub grid: Grid,
    pub train: TrainSection,
    pub output: Option<OutputSection>,
}

/// The axes; the sweep runs their Cartesian product (see [`SweepSpec::cells`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grid {
    pub dataset: Vec<String>,
    pub model: Vec<String>,
    pub collectives: Vec<CollectiveCell>,
    /// Fraction of training records in the collective; 0 = no-collective baseline.
    pub alpha: Vec<f64>,
    pub privacy: Vec<Privacy>,
    /// Clipping norms C; empty only when every privacy arm is [`Privacy::NonPrivate`].
    pub clip: Vec<f64>,
    pub seed: Vec<u64>,
}

/// `[output]`: where results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub dir: Option<PathBuf>,
}

/// A collective as an opaque spec string, parsed by the collective module's `FromStr` (the lead
/// appends α from the alpha axis), plus a short label for reports (defaults to the spec).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectiveCell {
    pub name: String,
    pub spec: String,
}

// The training enums are the trainer's own (one source of truth for names and defaults).
pub use crate::accountant::Method as AccountantMethod;
pub use crate::dpsgd::{Clipping, GradMode, OptimizerKind as Optimizer};

/// `[train]`: settings shared by every cell. `epochs`, `batch_size` and `lr` are required; the
/// defaults of the others are the `default_*` functions below (the one place they are set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub epochs: u32,
    /// Expected (logical) batch size; the Poisson sampling rate is q = batch_size / n.
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default = "default_optimizer")]
    pub optimizer: Optimizer,
    #[serde(default)]
    pub momentum: f64,
    #[serde(default = "default_clipping")]
    pub clipping: Clipping,
    #[serde(default = "default_grad_mode")]
    pub grad_mode: GradMode,
    #[serde(default = "default_delta")]
    pub delta: f64,
    #[serde(default = "default_accountant")]
    pub accountant: AccountantMethod,
    /// Largest micro-batch held in memory at once (None: the whole logical batch).
    #[serde(default)]
    pub max_physical_batch: Option<usize>,
    /// Use only the first n training records (None: all).
    #[serde(default)]
    pub train_subset: Option<usize>,
    /// Use only the first n test records (None: all).
    #[serde(default)]
    pub test_subset: Option<usize>,
    /// Learning-rate schedule (left out of the cell hash while constant, so older sweeps resume).
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_schedule: crate::train::fit::LrSchedule,
    /// Input standardisation, `"none"`, `"fit"` (non-private cells only) or
    /// `{ fixed = { mean = [..], std = [..] } }` (left out of the cell hash while none).
    #[serde(default, skip_serializing_if = "is_default")]
    pub input_norm: crate::train::fit::InputNorm,
    /// L2 coefficient λ, added as λθ to the (privatised) gradient outside the clip (left out of
    /// the cell hash while 0). The convex DP-SGD guarantee needs λ > 0.
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight_decay: f64,
    /// Relabel to a binary task: class c → 1, every other class → 0, before the collective plants
    /// (the convex arm: 2-class softmax is binary logistic regression). Left out of the hash while unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_vs_rest: Option<i64>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub fn default_optimizer() -> Optimizer {
    crate::train::fit::FitConfig::default().optimizer
}
pub fn default_clipping() -> Clipping {
    crate::dpsgd::DpSettings::default().clipping
}
pub fn default_grad_mode() -> GradMode {
    crate::dpsgd::DpSettings::default().grad_mode
}
pub fn default_delta() -> f64 {
    crate::train::run::DEFAULT_DELTA
}
pub fn default_accountant() -> AccountantMethod {
    AccountantMethod::Rdp
}

impl<'de> Deserialize<'de> for CollectiveCell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CollectiveCell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a collective spec string or a table {{ name = \"..\", spec = \"..\" }}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CollectiveCell, E> {
                Ok(CollectiveCell { name: s.to_string(), spec: s.to_string() })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<CollectiveCell, A::Error> {
                let (mut name, mut spec): (Option<String>, Option<String>) = (None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "name" => name = Some(m.next_value()?),
                        "spec" => spec = Some(m.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["name", "spec"])),
                    }
                }
                let spec = spec.ok_or_else(|| de::Error::missing_field("spec"))?;
                Ok(CollectiveCell { name: name.unwrap_or_else(|| spec.clone()), spec })
            }
        }
        d.deserialize_any(V)
    }
}

impl SweepSpec {
    /// Reads and validates a spec file; errors name the file, the key and its line.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SweepError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path)
    }
    /// Every cell, in a fixed order (dataset, model, collective, privacy, clip, alpha, seed;
    /// the last varies fastest). Non-private arms get `clip = None` once instead of once per C.
    /// Builds every cell: for large grids, address cells by index with [`super::plan::Plan`].
    pub fn cells(&self) -> Vec<Cell> {
        super::plan::Plan::new(self).expect("a grid small enough to list").cells()
    }

    /// `[output] dir`, else `results/<name>`.
    pub fn output_dir(&self) -> PathBuf {
        self.output
            .as_ref()
            .and_then(|o| o.dir.clone())
            .unwrap_or_else(|| PathBuf::from("results").join(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashSet;

    pub(crate) const SPEC: &str = r#"
name = "t"
[grid]
dataset = ["synth"]
model = ["logreg"]
collectives = ["trigger=patch:size=3,target=0,strategy=feature-label", { name = "off", spec = "trigger=offset:0.5,target=1" }]
alpha = [0.0, 0.01, 0.1]
privacy = ["none", "eps=1", "sigma=0"]
clip = [1.0, 5.0]
seed = [0, 1]
[train]
epochs = 2
batch_size = 64
lr = 0.5
"#;

    fn parse(s: &str) -> Result<SweepSpec, SweepError> {
        SweepSpec::from_toml_str(s, Path::new("spec.toml"))
    }

    #[test]
    fn cells_count_and_order_are_fixed() {
        let s = parse(SPEC).unwrap();
        let cells = s.cells();
        // per collective: none → 1 clip, eps=1 and sigma=0 → 2 clips each: 5 arms × 3 α × 2 seeds
        assert_eq!(cells.len(), 2 * 5 * 3 * 2);
        assert_eq!(cells[0].privacy, Privacy::NonPrivate);
        assert_eq!(cells[0].clip, None);
        assert_eq!((cells[0].alpha, cells[0].seed), (0.0, 0));
        assert_eq!((cells[1].alpha, cells[1].seed), (0.0, 1));
        assert_eq!(cells[2].alpha, 0.01);
        assert_eq!(s.cells(), cells);
        let hashes: HashSet<String> = cells.iter().map(|c| c.config_hash()).collect();
        assert_eq!(hashes.len(), cells.len());
    }

    #[test]
    fn hash_is_sha256_of_sorted_json_without_labels() {
        let s = parse(SPEC).unwrap();
        let c = &s.cells()[0];
        let expected_json = concat!(
            r#"{"alpha":0.0,"clip":null,"collective":{"spec":"trigger=patch:size=3,target=0,strategy=feature-label"},"#,
            r#""dataset":"synth","model":"logreg","privacy":"none","seed":0,"#,
            r#""train":{"accountant":"rdp","batch_size":64,"clipping":"flat","delta":0.00001,"epochs":2,"#,
            r#""grad_mode":"ghost","lr":0.5,"max_physical_batch":null,"momentum":0.0,"#,
            r#""optimizer":"sgd","test_subset":null,"train_subset":null}}"#
        );
        assert_eq!(c.canonical_json(), expected_json);
        let d = Sha256::digest(expected_json.as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(c.config_hash(), hex[..16]);
        // Labels do not change the hash; the key order in the file does not either.
        let mut renamed = c.clone();
        renamed.sweep = "other".into();
        renamed.collective.name = "label".into();
        assert_eq!(renamed.config_hash(), c.config_hash());
        let reordered =
            SPEC.replace("epochs = 2\nbatch_size = 64\nlr = 0.5", "lr = 0.5\nbatch_size = 64\nepochs = 2");
        assert_ne!(reordered, SPEC);
        assert_eq!(parse(&reordered).unwrap().cells()[0].config_hash(), c.config_hash());
    }

    #[test]
    fn privacy_round_trips() {
        for s in ["none", "eps=1", "eps=0.5", "sigma=0", "sigma=1.25"] {
            let p: Privacy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert!("eps=0".parse::<Privacy>().is_err());
        assert!("sigma=-1".parse::<Privacy>().is_err());
        assert!("delta=1".parse::<Privacy>().is_err());
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = parse(&SPEC.replace("seed = [0, 1]", "seed = []")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("spec.toml:10:") && m.contains("grid.seed"), "{m}");
        let e = parse(&SPEC.replace("lr = 0.5", "lr = 0.5\nlearning_rate = 1")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("spec.toml") && m.contains("learning_rate") && m.contains("line 15"), "{m}");
        let e = parse(&SPEC.replace("epochs = 2", "epochs = \"two\"")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("epochs") && m.contains("line 12"), "{m}");
        let e = parse(&SPEC.replace("lr = 0.5", "lr = -1.0")).unwrap_err();
        assert!(e.to_string().contains("spec.toml:14: `train.lr`"), "{e}");
        let e = parse(&SPEC.replace("alpha = [0.0, 0.01, 0.1]", "alpha = [0.0, 1.5]")).unwrap_err();
        assert!(e.to_string().contains("grid.alpha"), "{e}");
        let e = parse(&SPEC.replace("\"eps=1\"", "\"eps=x\"")).unwrap_err();
        assert!(e.to_string().contains("eps=x") && e.to_string().contains("line 8"), "{e}");
        let e = parse(&SPEC.replace("clip = [1.0, 5.0]\n", "")).unwrap_err();
        assert!(e.to_string().contains("grid.clip"), "{e}");
        let e = parse(&SPEC.replace("seed = [0, 1]", "seed = [0, 0]")).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        let e = parse(&SPEC.replace("lr = 0.5", "lr = 0.5\nweight_decay = -0.1")).unwrap_err();
        assert!(e.to_string().contains("spec.toml:15: `train.weight_decay`"), "{e}");
        let e = parse(&SPEC.replace("lr = 0.5", "lr = 0.5\none_vs_rest = -1")).unwrap_err();
        assert!(e.to_string().contains("spec.toml:15: `train.one_vs_rest`"), "{e}");
    }

    #[test]
    fn weight_decay_and_one_vs_rest_enter_the_hash_only_when_set() {
        let base = parse(SPEC).unwrap().cells()[0].config_hash();
        assert_eq!(
            parse(&SPEC.replace("lr = 0.5", "lr = 0.5\nweight_decay = 0.0")).unwrap().cells()[0]
                .config_hash(),
            base
        );
        assert_ne!(
            parse(&SPEC.replace("lr = 0.5", "lr = 0.5\nweight_decay = 0.05")).unwrap().cells()[0]
                .config_hash(),
            base
        );
        assert_ne!(
            parse(&SPEC.replace("lr = 0.5", "lr = 0.5\none_vs_rest = 0")).unwrap().cells()[0].config_hash(),
            base
        );
    }

    #[test]
    fn non_private_only_needs_no_clip() {
        let s =
            SPEC.replace("clip = [1.0, 5.0]\n", "").replace(r#"["none", "eps=1", "sigma=0"]"#, r#"["none"]"#);
        let s = parse(&s).unwrap();
        assert!(s.grid.clip.is_empty());
        assert_eq!(s.cells().len(), 2 * 3 * 2);
        assert_eq!(s.output_dir(), PathBuf::from("results/t"));
    }
}
