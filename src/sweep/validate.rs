//! Reading a spec file: the TOML as written (with spans), checked axis by axis into a
//! [`SweepSpec`]; every error names the file, the key and its line. Also the check that every
//! name in the grid is one the real cell runner knows.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::spec::{CollectiveCell, Grid, OutputSection, SweepSpec, TrainSection};
use super::{Privacy, SweepError};

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
pub(crate) fn line_of_key(text: &str, section: &str, key: &str) -> usize {
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
}
