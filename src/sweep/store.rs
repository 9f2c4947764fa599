//! The results CSV: one row per finished cell, appended crash-safely, read back for resume.
//!
//! Crash safety: a row is serialised in memory, then written with ONE `write(2)` on a file opened
//! with `O_APPEND`, then `fsync`ed, under a mutex. A regular-file write of a few hundred bytes is
//! not split by the kernel, so a SIGKILL leaves either the whole row or none of it. Should a torn
//! row appear anyway (power loss, a full disk), [`ResultStore::open`] drops it and truncates the
//! file to the last complete line, saying so on stderr.
//!
//! Failed cells are recorded too (`error` non-empty) but do not count as done: a rerun retries
//! them. Readers (report, merge) take, per `config_hash`, the last row without an error.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
const ADDED_IN_V2: usize = 3;
/// Columns added in version 3 (the last ones of [`ResultRow::header`]).
const ADDED_IN_V3: usize = 12;

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

fn csv_fields(line: &str) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    r.records()
        .next()
        .and_then(|x| x.ok())
        .map(|rec| rec.iter().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Collapses newlines and control characters so that every row is exactly one line.
fn one_line(s: &str) -> String {
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
fn read_rows_versioned(path: &Path, bytes: &[u8], repair: bool) -> Result<ReadRows, SweepError> {
    let store_err = |message: String| SweepError::Store { path: path.to_path_buf(), message };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| store_err(format!("cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let file_version = header_version(path, &header)?;
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

/// The results of one sweep (or shard) on disk, open for appending.
pub struct ResultStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// Hashes of the successful rows (the rows themselves stay on disk: a shard of a 10⁶-cell
    /// grid would hold a gigabyte of them).
    done: HashSet<String>,
}

impl ResultStore {
    /// Opens (or creates, with its header) a results file; repairs a torn last line; refuses a
    /// file of another schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SweepError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SweepError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| SweepError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let bytes = std::fs::read(&path).map_err(io)?;
        let rows = if bytes.is_empty() {
            let mut line = ResultRow::header().join(",");
            line.push('\n');
            file.write_all(line.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Vec::new()
        } else if !bytes.contains(&b'\n') {
            return Err(SweepError::Store {
                path,
                message: "the header line is incomplete (no newline); not a results file".into(),
            });
        } else {
            let ((rows, truncate_at), version) = read_rows_versioned(&path, &bytes, true)?;
            if version != SCHEMA_VERSION {
                return Err(SweepError::Store {
                    path,
                    message: format!(
                        "written with schema_version {version} (without the columns lr_schedule, input_norm, \
                         torch_threads); `crowdout report` still reads it, but a sweep does not append \
                         schema_version {SCHEMA_VERSION} rows to it: use another --out"
                    ),
                });
            }
            if let Some(at) = truncate_at {
                file.set_len(at).map_err(io)?;
                file.sync_all().map_err(io)?;
            }
            rows
        };
        let done = rows.into_iter().filter(|r| r.is_ok()).map(|r| r.config_hash).collect();
        Ok(ResultStore { path, inner: Mutex::new(Inner { file, done }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hashes of cells finished without error (failed cells are retried).
    pub fn done_hashes(&self) -> HashSet<String> {
        self.lock().done.clone()
    }

    /// Every row in file order, failed ones included (read back from the file).
    pub fn rows(&self) -> Result<Vec<ResultRow>, SweepError> {
        let _appends_done = self.lock();
        read_results(&self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written row (one write call), so a
        // poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one row: one `write(2)` of the complete line, then `fsync`.
    pub fn append(&self, row: &ResultRow) -> Result<(), SweepError> {
        let mut row = row.clone();
        row.error = one_line(&row.error);
        row.flag = one_line(&row.flag);
        let line = row.to_csv_line().map_err(|message| SweepError::Store {
            path: self.path.clone(),
            message: format!("cannot serialise row {}: {message}", row.config_hash),
        })?;
        let io = |source| SweepError::Io { path: self.path.clone(), source };
        let mut inner = self.lock();
        let n = inner.file.write(&line).map_err(io)?;
        if n != line.len() {
            // A short write on a regular file means a full disk or similar; finish the line so
            // the file stays parseable, and report it.
            inner.file.write_all(&line[n..]).map_err(io)?;
        }
        inner.file.sync_data().map_err(io)?;
        if row.is_ok() {
            inner.done.insert(row.config_hash);
        }
        Ok(())
    }
}

/// Per config_hash, the last row without an error (else the last failed row), in first-seen order.
pub fn latest_per_cell(rows: &[ResultRow]) -> Vec<ResultRow> {
    let mut order: Vec<String> = Vec::new();
    let mut best: HashMap<String, ResultRow> = HashMap::new();
    for r in rows {
        match best.get(&r.config_hash) {
            None => {
                order.push(r.config_hash.clone());
                best.insert(r.config_hash.clone(), r.clone());
            }
            Some(prev) => {
                if r.is_ok() || !prev.is_ok() {
                    best.insert(r.config_hash.clone(), r.clone());
                }
            }
        }
    }
    order.into_iter().filter_map(|h| best.remove(&h)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::spec::SweepSpec;

    fn cells() -> Vec<Cell> {
        let text = r#"
name = "s"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["c, with \"quotes\""]
alpha = [0.0, 0.1]
privacy = ["none", "eps=2"]
clip = [1.0]
seed = [1]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;
        SweepSpec::from_toml_str(text, Path::new("x.toml")).unwrap().cells()
    }

    fn row(c: &Cell, s: f64) -> ResultRow {
        let mut r = ResultRow::from_cell(c);
        r.success = Some(s);
        r.eps_rdp = Some(2.0);
        r
    }

    #[test]
    fn rows_round_trip_and_resume_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let cs = cells();
        {
            let st = ResultStore::open(&p).unwrap();
            st.append(&row(&cs[0], 0.5)).unwrap();
            st.append(&ResultRow::failed(&cs[1], "boom\nsecond line")).unwrap();
        }
        let st = ResultStore::open(&p).unwrap();
        let rows = st.rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], row(&cs[0], 0.5));
        assert_eq!(rows[1].error, "boom second line");
        assert_eq!(st.done_hashes(), [cs[0].config_hash()].into_iter().collect());
    }

    #[test]
    fn torn_last_line_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let cs = cells();
        {
            let st = ResultStore::open(&p).unwrap();
            st.append(&row(&cs[0], 0.5)).unwrap();
        }
        let good = std::fs::read(&p).unwrap();
        let line = row(&cs[1], 0.25).to_csv_line().unwrap();
        for cut in [1, line.len() / 2, line.len() - 1] {
            let mut torn = good.clone();
            torn.extend_from_slice(&line[..cut]);
            std::fs::write(&p, &torn).unwrap();
            let st = ResultStore::open(&p).unwrap();
            assert_eq!(st.rows().unwrap().len(), 1, "cut {cut}");
            assert_eq!(std::fs::read(&p).unwrap(), good, "cut {cut}");
            st.append(&row(&cs[1], 0.25)).unwrap();
            drop(st);
            assert_eq!(ResultStore::open(&p).unwrap().rows().unwrap().len(), 2);
            std::fs::write(&p, &good).unwrap();
        }
    }

    #[test]
    fn version_1_files_are_read_with_defaults_but_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.csv");
        let cs = cells();
        // A version-1 file: the header and rows without the columns added in version 2.
        let header = ResultRow::header();
        let mut text = header[..header.len() - ADDED_IN_V2 - ADDED_IN_V3].join(",") + "\n";
        let mut r = row(&cs[0], 0.5);
        r.schema_version = 1;
        let line = String::from_utf8(r.to_csv_line().unwrap()).unwrap();
        let fields = csv_fields(line.trim_end());
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.write_record(&fields[..fields.len() - ADDED_IN_V2 - ADDED_IN_V3]).unwrap();
        text.push_str(&String::from_utf8(w.into_inner().unwrap()).unwrap());
        std::fs::write(&p, &text).unwrap();
        let rows = read_results(&p).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].lr_schedule.as_str(), rows[0].input_norm.as_str(), rows[0].torch_threads),
            ("constant", "none", None)
        );
        assert_eq!(rows[0].success, Some(0.5));
        let e = ResultStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("v1.csv") && e.contains("schema_version 1") && e.contains("another --out"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "the refused file is untouched");
    }

    #[test]
    fn foreign_header_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("other.csv");
        std::fs::write(&p, "a,b,c\n1,2,3\n").unwrap();
        let e = ResultStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("other.csv") && e.contains("schema_version"), "{e}");
    }

    #[test]
    fn latest_prefers_success_over_failure() {
        let cs = cells();
        let rows = vec![
            ResultRow::failed(&cs[0], "x"),
            row(&cs[1], 0.1),
            row(&cs[0], 0.7),
            ResultRow::failed(&cs[0], "later failure"),
        ];
        let l = latest_per_cell(&rows);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].success, Some(0.7));
    }
}
