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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

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

/// A privacy arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Privacy {
    /// Plain SGD: no clipping, no noise.
    NonPrivate,
    /// DP-SGD with σ calibrated so that the run reaches this ε at the train section's δ.
    Epsilon(f64),
    /// DP-SGD with this noise multiplier; σ = 0 with a clip is the clip-only arm.
    Sigma(f64),
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

/// One run: a value on every axis plus the train section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The sweep's name (a label, left out of [`Cell::config_hash`]).
    pub sweep: String,
    pub dataset: String,
    pub model: String,
    pub collective: CollectiveCell,
    pub alpha: f64,
    pub privacy: Privacy,
    /// None for non-private cells (no clipping).
    pub clip: Option<f64>,
    pub seed: u64,
    pub train: TrainSection,
}

impl Cell {
    /// The canonical JSON of everything that determines the run's numbers: the cell with object
    /// keys sorted and the labels (`sweep`, `collective.name`) left out.
    pub fn canonical_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("sweep");
            if let Some(c) = obj.get_mut("collective").and_then(|c| c.as_object_mut()) {
                c.remove("name");
            }
        }
        canonical_json_of(&v)
    }

    /// First 16 hex digits of SHA-256 of [`Cell::canonical_json`]: stable across runs,
    /// platforms and the order of keys in the TOML file. Identifies the cell in the results.
    pub fn config_hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The ε target of an `eps=` arm.
    pub fn target_epsilon(&self) -> Option<f64> {
        match self.privacy {
            Privacy::Epsilon(e) => Some(e),
            _ => None,
        }
    }
}

/// JSON with object keys sorted at every level (serde_json's own number formatting).
pub(crate) fn canonical_json_of(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (k, val)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(val, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, val) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(val, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privacy::NonPrivate => write!(f, "none"),
            Privacy::Epsilon(e) => write!(f, "eps={e}"),
            Privacy::Sigma(s) => write!(f, "sigma={s}"),
        }
    }
}

impl FromStr for Privacy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "none" || t == "non-private" {
            return Ok(Privacy::NonPrivate);
        }
        let (key, val) = t
            .split_once('=')
            .ok_or_else(|| format!("privacy `{s}`: expected `none`, `eps=<ε>` or `sigma=<σ>`"))?;
        let x: f64 = val.trim().parse().map_err(|_| format!("privacy `{s}`: `{val}` is not a number"))?;
        match key.trim() {
            "eps" | "epsilon" => {
                if x.is_finite() && x > 0.0 {
                    Ok(Privacy::Epsilon(x))
                } else {
                    Err(format!("privacy `{s}`: ε must be finite and > 0"))
                }
            }
            "sigma" => {
                if x.is_finite() && x >= 0.0 {
                    Ok(Privacy::Sigma(x + 0.0))
                } else {
                    Err(format!("privacy `{s}`: σ must be finite and ≥ 0"))
                }
            }
            k => Err(format!("privacy `{s}`: unknown key `{k}`, expected `eps` or `sigma`")),
        }
    }
}

impl TryFrom<String> for Privacy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Privacy> for String {
    fn from(p: Privacy) -> String {
        p.to_string()
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    grid: Spanned<RawGrid>,
    train: TrainSection,
    output: Option<OutputSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    dataset: Spanned<Vec<String>>,
    model: Spanned<Vec<String>>,
    collectives: Spanned<Vec<CollectiveCell>>,
    alpha: Spanned<Vec<f64>>,
    privacy: Spanned<Vec<Privacy>>,
    clip: Option<Spanned<Vec<f64>>>,
    seed: Spanned<Vec<u64>>,
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line of `key = ...` inside `[section]` (for values without spans); else the section's.
fn line_of_key(text: &str, section: &str, key: &str) -> usize {
    let mut current = String::new();
    let mut section_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if current == section {
                section_line = i + 1;
            }
            continue;
        }
        if current == section {
            if let Some(rest) = l.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return i + 1;
                }
            }
        }
    }
    section_line
}

impl SweepSpec {
    /// Reads and validates a spec file; errors name the file, the key and its line.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SweepError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses spec text; `path` is only used in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, SweepError> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| SweepError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: &str, line: usize, message: String| SweepError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line,
            message,
        };
        let line = |span: std::ops::Range<usize>| line_at(text, span.start);

        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with('.')
        {
            return Err(invalid(
                "name",
                line(raw.name.span()),
                format!("`{name}` must be non-empty and use only letters, digits, '-', '_', '.'"),
            ));
        }

        let g = raw.grid.into_inner();
        macro_rules! nonempty {
            ($field:ident) => {
                if g.$field.get_ref().is_empty() {
                    return Err(invalid(
                        concat!("grid.", stringify!($field)),
                        line(g.$field.span()),
                        "axis is empty; give at least one value".to_string(),
                    ));
                }
            };
        }
        nonempty!(dataset);
        nonempty!(model);
        nonempty!(collectives);
        nonempty!(alpha);
        nonempty!(privacy);
        nonempty!(seed);

        for (key, axis) in [("grid.dataset", &g.dataset), ("grid.model", &g.model)] {
            for v in axis.get_ref() {
                if v.trim().is_empty() || v.chars().any(|c| c.is_control()) {
                    return Err(invalid(key, line(axis.span()), format!("bad value `{v:?}`")));
                }
            }
        }
        for c in g.collectives.get_ref() {
            if c.spec.trim().is_empty()
                || c.spec.chars().any(|ch| ch.is_control())
                || c.name.chars().any(|ch| ch.is_control())
            {
                return Err(invalid(
                    "grid.collectives",
                    line(g.collectives.span()),
                    format!("bad collective `{:?}`: empty or with control characters", c.spec),
                ));
            }
            if c.spec.contains("alpha=") {
                return Err(invalid(
                    "grid.collectives",
                    line(g.collectives.span()),
                    format!("`{}` sets alpha; alpha comes from grid.alpha", c.spec),
                ));
            }
        }
        for &a in g.alpha.get_ref() {
            if !(a.is_finite() && (0.0..1.0).contains(&a)) {
                return Err(invalid("grid.alpha", line(g.alpha.span()), format!("{a} is outside [0, 1)")));
            }
        }
        let needs_clip = g.privacy.get_ref().iter().any(|p| !matches!(p, Privacy::NonPrivate));
        let clip = match &g.clip {
            Some(c) => {
                if c.get_ref().is_empty() {
                    return Err(invalid(
                        "grid.clip",
                        line(c.span()),
                        "axis is empty; give at least one value".into(),
                    ));
                }
                for &x in c.get_ref() {
                    if !(x.is_finite() && x > 0.0) {
                        return Err(invalid(
                            "grid.clip",
                            line(c.span()),
                            format!("{x}: a clipping norm must be finite and > 0"),
                        ));
                    }
                }
                c.get_ref().clone()
            }
            None if needs_clip => {
                return Err(invalid(
                    "grid.clip",
                    line_of_key(text, "grid", "privacy"),
                    "missing: a private arm (eps= or sigma=) needs clipping norms".into(),
                ))
            }
            None => Vec::new(),
        };
        // Duplicates would silently run a cell twice under one hash.
        fn dup<T: PartialEq + fmt::Debug>(v: &[T]) -> Option<&T> {
            v.iter().enumerate().find(|(i, x)| v[..*i].contains(x)).map(|(_, x)| x)
        }
        macro_rules! nodup {
            ($key:expr, $vals:expr, $span:expr) => {
                if let Some(d) = dup($vals) {
                    return Err(invalid($key, line($span), format!("duplicate value {d:?}")));
                }
            };
        }
        nodup!("grid.dataset", g.dataset.get_ref(), g.dataset.span());
        nodup!("grid.model", g.model.get_ref(), g.model.span());
        let specs: Vec<&String> = g.collectives.get_ref().iter().map(|c| &c.spec).collect();
        nodup!("grid.collectives", &specs, g.collectives.span());
        nodup!("grid.alpha", g.alpha.get_ref(), g.alpha.span());
        nodup!("grid.privacy", g.privacy.get_ref(), g.privacy.span());
        nodup!("grid.seed", g.seed.get_ref(), g.seed.span());
        if let Some(c) = &g.clip {
            nodup!("grid.clip", c.get_ref(), c.span());
        }

        let t = &raw.train;
        let tl = |key: &str| line_of_key(text, "train", key);
        if t.epochs == 0 {
            return Err(invalid("train.epochs", tl("epochs"), "must be ≥ 1".into()));
        }
        if t.batch_size == 0 {
            return Err(invalid("train.batch_size", tl("batch_size"), "must be ≥ 1".into()));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(invalid("train.lr", tl("lr"), format!("{} must be finite and > 0", t.lr)));
        }
        if !(t.momentum.is_finite() && (0.0..1.0).contains(&t.momentum)) {
            return Err(invalid(
                "train.momentum",
                tl("momentum"),
                format!("{} is outside [0, 1)", t.momentum),
            ));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(invalid(
                "train.weight_decay",
                tl("weight_decay"),
                format!("{} must be finite and ≥ 0", t.weight_decay),
            ));
        }
        if let Some(c) = t.one_vs_rest {
            if c < 0 {
                return Err(invalid(
                    "train.one_vs_rest",
                    tl("one_vs_rest"),
                    format!("{c} is not a class label (≥ 0)"),
                ));
            }
        }
        if !(t.delta > 0.0 && t.delta < 1.0) {
            return Err(invalid("train.delta", tl("delta"), format!("{} is outside (0, 1)", t.delta)));
        }
        for (key, v) in [
            ("max_physical_batch", t.max_physical_batch),
            ("train_subset", t.train_subset),
            ("test_subset", t.test_subset),
        ] {
            if v == Some(0) {
                return Err(invalid(&format!("train.{key}"), tl(key), "must be ≥ 1".into()));
            }
        }
        if t.input_norm == crate::train::fit::InputNorm::Fit
            && g.privacy.get_ref().iter().any(|p| *p != Privacy::NonPrivate)
        {
            return Err(invalid(
                "train.input_norm",
                tl("input_norm"),
                "\"fit\" standardises with statistics of the private training set, which the accountant does not cover; \
                 use it with privacy = [\"none\"] only, or give public constants { fixed = { mean = [..], std = [..] } }"
                    .into(),
            ));
        }

        Ok(SweepSpec {
            name,
            grid: Grid {
                dataset: g.dataset.into_inner(),
                model: g.model.into_inner(),
                collectives: g.collectives.into_inner(),
                alpha: g.alpha.into_inner().into_iter().map(|a| a + 0.0).collect(),
                privacy: g.privacy.into_inner(),
                clip,
                seed: g.seed.into_inner(),
            },
            train: raw.train,
            output: raw.output,
        })
    }

    /// Checks that every dataset, model and collective named in the grid is one the real cell
    /// runner knows (the spec parser alone accepts any name, so that tests can use a fake runner).
    /// Errors name the file, the key and its line. `text` is the spec file's text (for lines).
    pub fn check_runnable(&self, text: &str, path: &Path) -> Result<(), SweepError> {
        use crate::collective::CollectiveSpec;
        use crate::data::DatasetSpec;
        use crate::models::ModelKind;
        use clap::ValueEnum;
        let invalid = |key: &str, message: String| SweepError::Invalid {
            path: path.to_path_buf(),
            key: format!("grid.{key}"),
            line: line_of_key(text, "grid", key),
            message,
        };
        for d in &self.grid.dataset {
            DatasetSpec::from_str(d).map_err(|e| invalid("dataset", e.to_string()))?;
        }
        for m in &self.grid.model {
            if <ModelKind as ValueEnum>::from_str(m, true).is_err() {
                let names: Vec<String> = ModelKind::value_variants()
                    .iter()
                    .filter_map(|k| k.to_possible_value().map(|v| v.get_name().to_string()))
                    .collect();
                return Err(invalid(
                    "model",
                    format!("unknown model `{m}`; expected one of: {}", names.join(", ")),
                ));
            }
        }
        for c in &self.grid.collectives {
            // α comes from grid.alpha; any valid value checks the rest of the spec.
            CollectiveSpec::from_str(&format!("{},alpha=0.5", c.spec))
                .map_err(|e| invalid("collectives", format!("`{}`: {e}", c.spec)))?;
        }
        Ok(())
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
