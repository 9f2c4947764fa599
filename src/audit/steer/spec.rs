//! The steerability spec: a sweep spec whose `[grid]` has no `alpha` and no `seed` (the design
//! chooses both), plus a `[steer]` section.
//!
//! ```toml
//! name = "steer-fmnist"
//!
//! [grid]                        # as a sweep's, without alpha and seed
//! dataset = ["fashion-mnist"]
//! model = ["cnn"]
//! collectives = [{ name = "patch", spec = "trigger=patch:size=3:pos=br:value=1,target=0,strategy=feature-label" }]
//! privacy = ["none", "eps=8"]
//! clip = [1.0]
//!
//! [steer]
//! alpha_range = [0.005, 0.4]    # required: [α_lo, α_hi], 0 < α_lo < α_hi < 1
//! targets = [0.5, 0.9]          # target successes S* for α*(S*)
//! threshold = "midway"          # steered: success > τ; "midway" = (S̄₀ + 1)/2, or a number
//! init = 4                      # initial design: α's log-spaced over alpha_range …
//! init_seeds = 2                # … with this many runs each
//! batch = 4                     # runs per arm per round after that
//! max_cells = 24                # budget of runs per arm
//! max_width_ratio = 1.5         # stop an arm early when every interval has hi/lo ≤ this
//! seed_offset = 0               # run j of an arm trains with seed seed_offset + j
//!
//! [train]                       # as a sweep's
//! epochs = 3
//! batch_size = 64
//! lr = 0.002
//! ```
//! The defaults are the `default_*` functions below (the one place they are set).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::analysis::Threshold;
use crate::sweep::spec::{Cell, CollectiveCell, OutputSection, Privacy, SweepSpec, TrainSection};
use crate::sweep::validate::line_of_key;
use crate::sweep::SweepError;

/// `[steer]`: the range, the targets and the design's budget.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SteerSettings {
    /// [α_lo, α_hi]: where the design may place runs.
    pub alpha_range: [f64; 2],
    /// Target successes S* for α*(S*).
    #[serde(default = "default_targets")]
    pub targets: Vec<f64>,
    /// When a run counts as steered.
    #[serde(default)]
    pub threshold: Threshold,
    /// α's of the initial design.
    #[serde(default = "default_init")]
    pub init: usize,
    /// Runs per initial α.
    #[serde(default = "default_init_seeds")]
    pub init_seeds: usize,
    /// Runs per arm per later round.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Budget of runs per arm.
    #[serde(default = "default_max_cells")]
    pub max_cells: usize,
    /// Stop an arm when every interval is closed with hi/lo at most this.
    #[serde(default = "default_max_width_ratio")]
    pub max_width_ratio: f64,
    /// Run j of an arm trains with seed `seed_offset + j` (another offset: an independent replicate).
    #[serde(default)]
    pub seed_offset: u64,
}

pub fn default_targets() -> Vec<f64> {
    vec![0.5, 0.9]
}
pub fn default_init() -> usize {
    4
}
pub fn default_init_seeds() -> usize {
    2
}
pub fn default_batch() -> usize {
    4
}
pub fn default_max_cells() -> usize {
    24
}
pub fn default_max_width_ratio() -> f64 {
    1.5
}

/// A validated steerability spec: the sweep part (with `alpha = [0]`, `seed = [0]`: one cell per
/// arm, the arm's template) and the `[steer]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerSpec {
    pub sweep: SweepSpec,
    pub steer: SteerSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read for its type and key checks; the values come from the sweep parser
struct RawSteerSpec {
    name: String,
    grid: RawGrid,
    train: TrainSection,
    output: Option<OutputSection>,
    steer: SteerSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawGrid {
    dataset: Vec<String>,
    model: Vec<String>,
    collectives: Vec<CollectiveCell>,
    privacy: Vec<Privacy>,
    clip: Option<Vec<f64>>,
}

/// Lines inserted after `[grid]` to read the grid with the sweep parser.
const INSERTED: &str = "alpha = [0.0]\nseed = [0]\n";
const INSERTED_LINES: usize = 2;

impl SteerSpec {
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SweepError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses spec text; `path` is only used in messages. Errors name the file, key and line.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, SweepError> {
        // Pass 1: the file as written (types, unknown keys such as grid.alpha, with lines).
        let raw: RawSteerSpec = toml::from_str(text).map_err(|e| SweepError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "{} (a steerability spec is a sweep spec without grid.alpha and grid.seed, plus [steer]; \
                 see docs/steerability.md)",
                e.to_string().trim_end()
            ),
        })?;
        let s = raw.steer;
        let invalid = |key: &str, message: String| SweepError::Invalid {
            path: path.to_path_buf(),
            key: format!("steer.{key}"),
            line: line_of_key(text, "steer", key),
            message,
        };
        let [lo, hi] = s.alpha_range;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo < hi && hi < 1.0) {
            return Err(invalid("alpha_range", format!("[{lo}, {hi}]: need 0 < α_lo < α_hi < 1")));
        }
        if s.targets.is_empty() {
            return Err(invalid("targets", "give at least one target success S*".into()));
        }
        for (i, &t) in s.targets.iter().enumerate() {
            if !(t > 0.0 && t < 1.0) {
                return Err(invalid("targets", format!("{t}: a target success must be in (0, 1)")));
            }
            if s.targets[..i].contains(&t) {
                return Err(invalid("targets", format!("{t} is given twice")));
            }
        }
        if let Threshold::Fixed(t) = s.threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(invalid("threshold", format!("{t}: must be in (0, 1), or \"midway\"")));
            }
        }
        for (key, v) in [("init", s.init), ("init_seeds", s.init_seeds), ("batch", s.batch)] {
            if v == 0 {
                return Err(invalid(key, "must be ≥ 1".into()));
            }
        }
        if s.max_cells < s.init * s.init_seeds {
            return Err(invalid(
                "max_cells",
                format!(
                    "{} is below the initial design's init × init_seeds = {}",
                    s.max_cells,
                    s.init * s.init_seeds
                ),
            ));
        }
        if s.max_width_ratio.is_nan() || s.max_width_ratio <= 1.0 {
            return Err(invalid("max_width_ratio", format!("{}: must be > 1", s.max_width_ratio)));
        }
        // Pass 2: the sweep parser's value checks, on the text with alpha and seed inserted after
        // [grid] and the [steer] section blanked; its lines are mapped back to the file's.
        let (sweep_text, grid_line) = sweep_text(text);
        let sweep = SweepSpec::from_toml_str(&sweep_text, path).map_err(|e| remap(e, grid_line))?;
        Ok(SteerSpec { sweep, steer: s })
    }

    /// Checks that every dataset, model and collective is one the real cell runner knows (as
    /// [`SweepSpec::check_runnable`]; `text` is the spec file's, for lines).
    pub fn check_runnable(&self, text: &str, path: &Path) -> Result<(), SweepError> {
        let (sweep_text, grid_line) = sweep_text(text);
        self.sweep.check_runnable(&sweep_text, path).map_err(|e| remap(e, grid_line))
    }

    /// One template cell per arm (α = 0, seed 0), in the sweep's order.
    pub fn arms(&self) -> Vec<Cell> {
        self.sweep.cells()
    }

    /// `[output] dir`, else `results/<name>`.
    pub fn output_dir(&self) -> PathBuf {
        self.sweep.output_dir()
    }
}

/// An error of the sweep parser on [`sweep_text`], with its line mapped back to the file's.
fn remap(e: SweepError, grid_line: usize) -> SweepError {
    match e {
        SweepError::Invalid { path, key, line, message } => SweepError::Invalid {
            path,
            key,
            line: if line > grid_line { line - INSERTED_LINES } else { line },
            message,
        },
        other => other,
    }
}

/// The spec text as a sweep spec (see [`SteerSpec::from_toml_str`]) and the line of `[grid]`.
fn sweep_text(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + INSERTED.len());
    let mut section = String::new();
    let mut grid_line = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if section == "steer" {
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if section == "grid" && t.starts_with('[') {
            grid_line = i + 1;
            out.push_str(INSERTED);
        }
    }
    (out, grid_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SPEC: &str = r#"name = "st"
[grid]
dataset = ["adult-mini"]
model = ["softmax"]
collectives = [{ name = "off", spec = "trigger=offset:feature=0:shift_std=4,target=1" }]
privacy = ["none", "eps=8"]
clip = [1.0]

[steer]
alpha_range = [0.01, 0.3]

[train]
epochs = 2
batch_size = 64
lr = 0.1
"#;

    fn parse(s: &str) -> Result<SteerSpec, SweepError> {
        SteerSpec::from_toml_str(s, Path::new("steer.toml"))
    }

    #[test]
    fn defaults_and_arms() {
        let s = parse(SPEC).unwrap();
        assert_eq!(s.steer.targets, vec![0.5, 0.9]);
        assert_eq!(s.steer.threshold, Threshold::default());
        assert_eq!((s.steer.init, s.steer.init_seeds, s.steer.batch, s.steer.max_cells), (4, 2, 4, 24));
        let arms = s.arms();
        assert_eq!(arms.len(), 2);
        assert_eq!(arms[1].privacy, Privacy::Epsilon(8.0));
        assert_eq!(s.output_dir(), PathBuf::from("results/st"));
        let t = parse(&SPEC.replace("[0.01, 0.3]", "[0.01, 0.3]\nthreshold = 0.4")).unwrap();
        assert_eq!(t.steer.threshold, Threshold::Fixed(0.4));
    }

    #[test]
    fn errors_name_key_and_line_of_the_file() {
        let e = parse(&SPEC.replace("[0.01, 0.3]", "[0.3, 0.01]")).unwrap_err().to_string();
        assert!(e.contains("steer.toml:10:") && e.contains("steer.alpha_range"), "{e}");
        let e = parse(&SPEC.replace("[0.01, 0.3]", "[0.01, 0.3]\ntargets = [1.5]")).unwrap_err().to_string();
        assert!(e.contains("steer.targets") && e.contains("1.5"), "{e}");
        // a value error found by the sweep parser keeps the line of the file
        let e = parse(&SPEC.replace("lr = 0.1", "lr = -1.0")).unwrap_err().to_string();
        assert!(e.contains("steer.toml:15:") && e.contains("train.lr"), "{e}");
        let e = parse(&SPEC.replace("clip = [1.0]", "clip = [-1.0]")).unwrap_err().to_string();
        assert!(e.contains("steer.toml:7:") && e.contains("grid.clip"), "{e}");
        let e = parse(&SPEC.replace("privacy =", "alpha = [0.1]\nprivacy =")).unwrap_err().to_string();
        assert!(e.contains("alpha") && e.contains("without grid.alpha"), "{e}");
        let e = parse(&SPEC.replace("[steer]\nalpha_range = [0.01, 0.3]\n", "")).unwrap_err().to_string();
        assert!(e.contains("steer"), "{e}");
        let text = SPEC.replace("\"softmax\"", "\"nope\"");
        let e = parse(&text).unwrap().check_runnable(&text, Path::new("steer.toml")).unwrap_err().to_string();
        assert!(e.contains("steer.toml:4:") && e.contains("unknown model"), "{e}");
    }
}
