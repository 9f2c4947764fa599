//! The results row: one finished (or failed) cell as a flat CSV record — its config, what the
//! run measured, the bounds and provenance — with the schema version and the reading of files of
//! every version (older ones with the defaults of the settings they lack).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spec::Cell;
use super::SweepError;

/// Bumped whenever the columns change; a file with an unknown version is refused, not mixed.
/// Version 2 appended `lr_schedule`, `input_norm` and `torch_threads`; version 3 appended the
/// bound diagnostics (`n_train` … `eps_tv_hat`). Older files are still read, with the defaults
/// of the settings they lack and the new measurements empty, but a sweep does not append
/// rows of the current version to them.
pub const SCHEMA_VERSION: u32 = 3;
/// Columns added in version 2 (after the version-1 columns).
pub(super) const ADDED_IN_V2: usize = 3;
/// Columns added in version 3 (the last ones of [`ResultRow::header`]).
pub(super) const ADDED_IN_V3: usize = 12;

fn default_lr_schedule() -> String {
    use erased::Named;
    crate::train::fit::LrSchedule::default().name()
}
fn default_input_norm() -> String {
    crate::train::fit::InputNorm::default().to_string()
}

/// One results row: the cell's full config (flat columns), what the run measured, the bounds and
/// provenance. `None` = not applicable (an empty CSV cell).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    // --- the cell ---
    pub sweep: String,
    pub dataset: String,
    pub model: String,
    /// Short label of the collective (reports group by it).
    pub collective_name: String,
    /// The opaque collective spec (without α).
    pub collective: String,
    pub alpha: f64,
    /// `none`, `eps=<ε>` or `sigma=<σ>` (the privacy arm as written in the spec).
    pub privacy: String,
    pub clip: Option<f64>,
    pub seed: u64,
    pub epochs: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: String,
    pub momentum: f64,
    pub clipping: String,
    pub grad_mode: String,
    pub accountant: String,
    pub max_physical_batch: Option<usize>,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
    /// [`Cell::config_hash`]: the key for resume and merge.
    pub config_hash: String,
    // --- privacy accounting ---
    /// Noise multiplier actually used (0 for clip-only, empty for non-private).
    pub sigma: Option<f64>,
    /// Poisson sampling rate.
    pub q: Option<f64>,
    pub steps: Option<u64>,
    pub eps_rdp: Option<f64>,
    pub eps_pld: Option<f64>,
    pub delta: f64,
    // --- measurements ---
    pub clean_acc: Option<f64>,
    /// Success rate on triggered test points whose true label is not the target.
    pub success: Option<f64>,
    /// Clopper–Pearson 95% interval of `success`.
    pub success_lo: Option<f64>,
    pub success_hi: Option<f64>,
    /// Success rate on all triggered test points (including those already of the target class).
    pub success_all: Option<f64>,
    /// The same success measure for a model trained without the collective.
    pub baseline_success: Option<f64>,
    // --- bounds ---
    pub hardt_lb: Option<f64>,
    pub dpsgd_lb: Option<f64>,
    /// `guarantee` (a proven bound: a measurement below it is a bug) or `prediction`.
    pub dpsgd_lb_kind: String,
    /// Group-privacy ceiling on success.
    pub ceiling_ub: Option<f64>,
    /// `""`, or e.g. `BELOW_GUARANTEED_LOWER_BOUND`, `ABOVE_CEILING` (`;`-joined).
    pub flag: String,
    // --- provenance ---
    pub wall_s: Option<f64>,
    pub git_commit: String,
    pub crowdout_version: String,
    pub schema_version: u32,
    /// Non-empty if the cell failed (then the measurements are empty).
    pub error: String,
    // --- added in schema version 2 ---
    #[serde(default = "default_lr_schedule")]
    pub lr_schedule: String,
    /// `none`, `fit` or `MEAN/STD` (see `crowdout train --help`).
    #[serde(default = "default_input_norm")]
    pub input_norm: String,
    /// libtorch intra-op threads of the worker: results are bit-identical only for the same
    /// count (docs/architecture.md). Empty in version-1 files (not recorded then).
    #[serde(default)]
    pub torch_threads: Option<i32>,
    // --- added in schema version 3 ---
    /// L2 coefficient λ (weight decay, applied outside the clip); 0 in older files.
    #[serde(default)]
    pub weight_decay: f64,
    /// `one_vs_rest` class c of a binary (c vs rest) arm; empty for the data set's own labels.
    #[serde(default)]
    pub one_vs_rest: Option<i64>,
    /// Training records N.
    #[serde(default)]
    pub n_train: Option<u64>,
    /// Records the collective modified (k).
    #[serde(default)]
    pub members: Option<u64>,
    /// Convex DP-SGD guarantee that holds for one run with probability ≥ 1 − `bound_beta`
    /// (`dpsgd_lb` is the guarantee on E[S] over sampling and noise).
    #[serde(default)]
    pub dpsgd_lb_hp: Option<f64>,
    /// β of `dpsgd_lb_hp`.
    #[serde(default)]
    pub bound_beta: Option<f64>,
    /// Success of the clipped minimiser Θ̂_C (the σ → 0, T → ∞ limit: what clipping leaves).
    #[serde(default)]
    pub clip_ref_success: Option<f64>,
    /// Which part of the DP-SGD bound's mean square dominates: `init`, `sampling` or `noise`.
    #[serde(default)]
    pub dpsgd_dominant: String,
    /// Hardt's ξ̂: clean training mass within the trigger's tolerance of the signal set (empty: n/a).
    #[serde(default)]
    pub xi_hat: Option<f64>,
    /// Hardt's Δ̂ from a clean model's class probabilities on the signal set (empty: n/a).
    #[serde(default)]
    pub delta_hat: Option<f64>,
    /// Implied suboptimality ε̂_TV: the smallest TV ε with Hardt's bound ≤ the measured success.
    #[serde(default)]
    pub eps_tv_hat: Option<f64>,
    /// The collective's effective α: the share of training records that carry its signal with
    /// its target label (coordination noise removes members; see `bounds::multi`).
    #[serde(default)]
    pub alpha_eff: Option<f64>,
}

impl ResultRow {
    /// A row with the cell's config columns and provenance filled and every measurement empty;
    /// the cell runner fills in what it measured.
    pub fn from_cell(cell: &Cell) -> Self {
        let t = &cell.train;
        use erased::Named;
        ResultRow {
            sweep: cell.sweep.clone(),
            dataset: cell.dataset.clone(),
            model: cell.model.clone(),
            collective_name: cell.collective.name.clone(),
            collective: cell.collective.spec.clone(),
            alpha: cell.alpha,
            privacy: cell.privacy.to_string(),
            clip: cell.clip,
            seed: cell.seed,
            epochs: t.epochs,
            batch_size: t.batch_size,
            lr: t.lr,
            optimizer: t.optimizer.name(),
            momentum: t.momentum,
            clipping: t.clipping.name(),
            grad_mode: t.grad_mode.name(),
            accountant: t.accountant.name(),
            max_physical_batch: t.max_physical_batch,
            train_subset: t.train_subset,
            test_subset: t.test_subset,
            config_hash: cell.config_hash(),
            sigma: None,
            q: None,
            steps: None,
            eps_rdp: None,
            eps_pld: None,
            delta: t.delta,
            clean_acc: None,
            success: None,
            success_lo: None,
            success_hi: None,
            success_all: None,
            baseline_success: None,
            hardt_lb: None,
            dpsgd_lb: None,
            dpsgd_lb_kind: String::new(),
            ceiling_ub: None,
            flag: String::new(),
            wall_s: None,
            git_commit: env!("CROWDOUT_GIT_COMMIT").to_string(),
            crowdout_version: env!("CARGO_PKG_VERSION").to_string(),
            schema_version: SCHEMA_VERSION,
            error: String::new(),
            lr_schedule: t.lr_schedule.name(),
            input_norm: t.input_norm.to_string(),
            torch_threads: None,
            weight_decay: t.weight_decay,
            one_vs_rest: t.one_vs_rest,
            n_train: None,
            members: None,
            dpsgd_lb_hp: None,
            bound_beta: None,
            clip_ref_success: None,
            dpsgd_dominant: String::new(),
            xi_hat: None,
            delta_hat: None,
            eps_tv_hat: None,
            alpha_eff: None,
        }
    }

    /// The row recorded for a cell that failed with `error`.
    pub fn failed(cell: &Cell, error: &str) -> Self {
        let mut r = Self::from_cell(cell);
        r.error = one_line(error);
        if r.error.is_empty() {
            r.error = "failed (no message)".into();
        }
        r
    }

    pub fn is_ok(&self) -> bool {
        self.error.is_empty()
    }

    /// The column names, in file order.
    pub fn header() -> Vec<String> {
        let mut w = csv::WriterBuilder::new().has_headers(true).from_writer(Vec::new());
        // Serialising any row makes serde emit the field names; the values are discarded.
        let dummy = ResultRow::default();
        let _ = w.serialize(&dummy);
        let bytes = w.into_inner().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        text.lines().next().unwrap_or("").split(',').map(str::to_string).collect()
    }

    /// The row as one CSV line ending in `\n` (no header).
    pub fn to_csv_line(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.serialize(self).map_err(|e| e.to_string())?;
        w.into_inner().map_err(|e| e.to_string())
    }

    /// Whether two rows for the same cell report the same results (ignoring timing/provenance).
    pub fn same_results(&self, other: &ResultRow) -> Result<(), String> {
        let mut a = self.clone();
        let mut b = other.clone();
        for r in [&mut a, &mut b] {
            r.wall_s = None;
            r.git_commit.clear();
            r.crowdout_version.clear();
            r.sweep.clear();
            r.collective_name.clear();
        }
        if a == b {
            return Ok(());
        }
        let la = String::from_utf8_lossy(&a.to_csv_line().unwrap_or_default()).to_string();
        let lb = String::from_utf8_lossy(&b.to_csv_line().unwrap_or_default()).to_string();
        let cols = Self::header();
        let diff: Vec<String> = csv_fields(&la)
            .into_iter()
            .zip(csv_fields(&lb))
            .zip(cols)
            .filter(|((x, y), _)| x != y)
            .map(|((x, y), c)| format!("{c}: `{x}` vs `{y}`"))
            .collect();
        Err(diff.join(", "))
    }
}

pub(super) fn csv_fields(line: &str) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    r.records()
        .next()
        .and_then(|x| x.ok())
        .map(|rec| rec.iter().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Collapses newlines and control characters so that every row is exactly one line.
pub(super) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// Kebab-case names of the train enums, as written in the spec.
mod erased {
    pub trait Named {
        fn name(&self) -> String;
    }
    impl<T: serde::Serialize> Named for T {
        fn name(&self) -> String {
            match serde_json::to_value(self) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(v) => v.to_string(),
                Err(_) => String::new(),
            }
        }
    }
}

/// Reads a results CSV: every row in file order. Torn or truncated trailing lines are reported
/// in the second value (byte offset to truncate to), not repaired.
/// `repair` only words the warning: whether the caller truncates the file or just skips the line.
fn read_rows(path: &Path, bytes: &[u8], repair: bool) -> Result<(Vec<ResultRow>, Option<u64>), SweepError> {
    Ok(read_rows_versioned(path, bytes, repair)?.0)
}

/// The schema version (1, 2 or [`SCHEMA_VERSION`]) of a results file with this header; an error
/// naming the first unexpected column otherwise.
pub(crate) fn header_version(path: &Path, header: &[String]) -> Result<u32, SweepError> {
    let store_err = |message: String| SweepError::Store { path: path.to_path_buf(), message };
    let expected = ResultRow::header();
    let v2 = &expected[..expected.len() - ADDED_IN_V3];
    let v1 = &expected[..expected.len() - ADDED_IN_V3 - ADDED_IN_V2];
    let file_version = if header == expected {
        SCHEMA_VERSION
    } else if header == v2 {
        2
    } else if header == v1 {
        1
    } else {
        0
    };
    if file_version == 0 {
        let version_hint = if header.iter().any(|h| h == "schema_version") {
            " (written by another schema_version of crowdout)"
        } else {
            ""
        };
        let first_diff = match header.iter().zip(&expected).position(|(h, e)| h != e) {
            Some(i) => format!("column {} is `{}`, expected `{}`", i + 1, header[i], expected[i]),
            None => format!("header has {} columns, expected {}", header.len(), expected.len()),
        };
        return Err(store_err(format!(
            "not a crowdout results file of schema_version {SCHEMA_VERSION}{version_hint}: \
             {first_diff} (expected header: `{}`); move it away or use another --out",
            expected.join(",")
        )));
    }
    Ok(file_version)
}

/// [`read_rows`], plus the schema version of the file's header (1, 2 or [`SCHEMA_VERSION`]).
type ReadRows = ((Vec<ResultRow>, Option<u64>), u32);

/// The header of the results CSV `rdr` reads from `path`, and its schema version
/// ([`header_version`]).
pub(crate) fn read_header<R: std::io::Read>(
    path: &Path,
    rdr: &mut csv::Reader<R>,
) -> Result<(Vec<String>, u32), SweepError> {
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| SweepError::Store {
            path: path.to_path_buf(),
            message: format!("cannot read the header: {e}"),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let version = header_version(path, &header)?;
    Ok((header, version))
}
pub(super) fn read_rows_versioned(path: &Path, bytes: &[u8], repair: bool) -> Result<ReadRows, SweepError> {
    let store_err = |message: String| SweepError::Store { path: path.to_path_buf(), message };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let (header, file_version) = read_header(path, &mut rdr)?;
    let expected = header;
    let headers = csv::StringRecord::from(expected.clone());
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let mut records = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => records.push(Ok(r)),
            Err(e) => records.push(Err(e)),
        }
    }
    let n = records.len();
    let mut rows = Vec::with_capacity(n);
    let mut truncate_at = None;
    for (i, rec) in records.into_iter().enumerate() {
        let last = i + 1 == n;
        let (rec, bad) = match rec {
            Ok(r) => {
                let torn = last && !ends_with_newline;
                let bad = if torn {
                    Some("no trailing newline".to_string())
                } else if r.len() != expected.len() {
                    Some(format!("{} fields, expected {}", r.len(), expected.len()))
                } else {
                    None
                };
                (Some(r), bad)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let line = rec.as_ref().and_then(|r| r.position()).map(|p| p.line()).unwrap_or(0);
        let parsed = match (&rec, &bad) {
            (Some(r), None) => match r.deserialize::<ResultRow>(Some(&headers)) {
                Ok(row) if (1..=SCHEMA_VERSION).contains(&row.schema_version) => Ok(row),
                Ok(row) => Err(format!("schema_version {}", row.schema_version)),
                Err(e) => Err(e.to_string()),
            },
            (_, Some(b)) => Err(b.clone()),
            (None, None) => Err("unreadable".into()),
        };
        match parsed {
            Ok(row) => rows.push(row),
            Err(msg) if last => {
                let offset = rec
                    .as_ref()
                    .and_then(|r| r.position())
                    .map(|p| p.byte())
                    .unwrap_or_else(|| last_line_start(bytes));
                let action =
                    if repair { "truncating the file to its last complete line" } else { "skipping it" };
                eprintln!("warning: {}: line {line}: torn last row ({msg}); {action}", path.display());
                truncate_at = Some(offset);
            }
            Err(msg) => return Err(store_err(format!("line {line}: bad row: {msg}"))),
        }
    }
    Ok(((rows, truncate_at), file_version))
}

/// Byte offset just after the last `\n` before the end (the start of the last line).
fn last_line_start(bytes: &[u8]) -> u64 {
    let end = if bytes.last() == Some(&b'\n') { bytes.len() - 1 } else { bytes.len() };
    bytes[..end].iter().rposition(|&b| b == b'\n').map(|p| p as u64 + 1).unwrap_or(0)
}

/// Reads every row of a results file (read-only; a torn last line is skipped with a warning).
pub fn read_results(path: impl AsRef<Path>) -> Result<Vec<ResultRow>, SweepError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
    Ok(read_rows(path, &bytes, false)?.0)
}
