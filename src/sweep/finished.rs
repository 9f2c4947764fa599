//! A light read of results files for planning: which cells are done and what a finished cell
//! cost, from four columns (`config_hash`, `error`, `wall_s`, `torch_threads`) without building
//! rows. Used by `crowdout sweep --dry-run` to show done/todo per shard and to estimate the cost of
//! the cells left.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::SweepError;

/// What the results files of a sweep say about finished cells.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Hashes of cells with a successful row.
    pub done: HashSet<String>,
    /// Core-seconds of each successful row: `wall_s` × `torch_threads` (1 where not recorded).
    pub core_s: Vec<f64>,
    /// `wall_s` of each successful row.
    pub wall_s: Vec<f64>,
}

impl Finished {
    /// Adds the successful rows of one results file (a missing file adds nothing; a torn last
    /// line is skipped).
    pub fn add_file(&mut self, path: &Path) -> Result<(), SweepError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(SweepError::Io { path: path.to_path_buf(), source }),
        };
        let store_err = |message: String| SweepError::Store { path: path.to_path_buf(), message };
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(&bytes[..]);
        let header = rdr.headers().map_err(|e| store_err(format!("cannot read the header: {e}")))?.clone();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(hash), Some(error)) = (col("config_hash"), col("error")) else {
            return Err(store_err("not a crowdout results file (no config_hash and error columns)".into()));
        };
        let (wall, threads) = (col("wall_s"), col("torch_threads"));
        let mut rec = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => continue, // a torn line: the store repairs it when the sweep reopens the file
            }
            if rec.len() != header.len() || !rec[error].is_empty() {
                continue;
            }
            self.done.insert(rec[hash].to_string());
            if let Some(w) = wall.and_then(|i| rec[i].parse::<f64>().ok()) {
                let t = threads.and_then(|i| rec[i].parse::<f64>().ok()).unwrap_or(1.0);
                self.wall_s.push(w);
                self.core_s.push(w * t.max(1.0));
            }
        }
        Ok(())
    }

    /// Mean and median of the successful rows' core-seconds, if any row recorded its time.
    pub fn core_seconds_per_cell(&self) -> Option<(f64, f64)> {
        if self.core_s.is_empty() {
            return None;
        }
        let mean = self.core_s.iter().sum::<f64>() / self.core_s.len() as f64;
        let mut v = self.core_s.clone();
        v.sort_by(f64::total_cmp);
        let median =
            if v.len() % 2 == 1 { v[v.len() / 2] } else { 0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2]) };
        Some((mean, median))
    }
}

/// The results files of a sweep's output folder: `results.csv` and every `results.shard-*-of-*.csv`.
pub fn results_files(out: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let main = out.join("results.csv");
    if main.is_file() {
        files.push(main);
    }
    if let Ok(dir) = std::fs::read_dir(out) {
        let mut shards: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("results.shard-") && n.ends_with(".csv"))
            })
            .collect();
        shards.sort();
        files.extend(shards);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fake::FakeRunner;
    use crate::sweep::{ResultStore, SweepSpec};

    #[test]
    fn reads_done_and_costs_skipping_failures_and_torn_lines() {
        let text = r#"
name = "f"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["c"]
alpha = [0.0, 0.1]
privacy = ["none"]
seed = [0, 1, 2]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;
        let cells = SweepSpec::from_toml_str(text, Path::new("f.toml")).unwrap().cells();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.shard-1-of-2.csv");
        let st = ResultStore::open(&p).unwrap();
        for (i, c) in cells.iter().enumerate() {
            let mut r = FakeRunner { sleep_ms: 0, fail_seed: Some(2) }
                .run(c)
                .unwrap_or_else(|e| crate::sweep::ResultRow::failed(c, &e));
            r.wall_s = Some(i as f64 + 1.0);
            r.torch_threads = Some(2);
            st.append(&r).unwrap();
        }
        drop(st);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(b"torn,row");
        std::fs::write(&p, bytes).unwrap();
        let mut f = Finished::default();
        f.add_file(&p).unwrap();
        f.add_file(&dir.path().join("missing.csv")).unwrap();
        assert_eq!(f.done.len(), 4);
        // seeds 0 and 1 of both alphas: cells 0, 1, 3, 4 → wall 1, 2, 4, 5; × 2 threads
        assert_eq!(f.core_seconds_per_cell(), Some((6.0, 6.0)));
        assert_eq!(results_files(dir.path()), vec![p]);
    }
}
