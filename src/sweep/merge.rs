//! Merging results files (shards, reruns) into one, deduplicated by `config_hash`.
//!
//! Per file, a cell's row is its last successful one (else its last failed one). Across files, a
//! success beats a failure; two successes must report the same results (everything but timing
//! and provenance), else the merge stops with a conflict error naming both files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::store::{latest_per_cell, read_results, ResultRow};
use super::SweepError;

/// Merges rows from several sources, `(name, rows)` in order; rows keep first-seen order.
pub fn merge_rows(sources: &[(String, Vec<ResultRow>)]) -> Result<Vec<ResultRow>, SweepError> {
    let mut order: Vec<String> = Vec::new();
    let mut chosen: HashMap<String, (String, ResultRow)> = HashMap::new();
    for (name, rows) in sources {
        for row in latest_per_cell(rows) {
            let hash = row.config_hash.clone();
            match chosen.get(&hash) {
                None => {
                    order.push(hash.clone());
                    chosen.insert(hash, (name.clone(), row));
                }
                Some((prev_name, prev)) => {
                    if prev.is_ok() && row.is_ok() {
                        prev.same_results(&row).map_err(|what| SweepError::Conflict {
                            hash: hash.clone(),
                            first: prev_name.clone(),
                            second: name.clone(),
                            what,
                        })?;
                    } else if row.is_ok() || !prev.is_ok() {
                        chosen.insert(hash, (name.clone(), row));
                    }
                }
            }
        }
    }
    Ok(order.into_iter().filter_map(|h| chosen.remove(&h).map(|(_, r)| r)).collect())
}

/// Reads and merges results files.
pub fn merge_files(inputs: &[PathBuf]) -> Result<Vec<ResultRow>, SweepError> {
    let mut sources = Vec::with_capacity(inputs.len());
    for p in inputs {
        sources.push((p.display().to_string(), read_results(p)?));
    }
    merge_rows(&sources)
}

/// Writes rows as a complete results file, atomically (temporary file, fsync, rename).
pub fn write_results(path: &Path, rows: &[ResultRow]) -> Result<(), SweepError> {
    let io = |source| SweepError::Io { path: path.to_path_buf(), source };
    let mut buf = ResultRow::header().join(",").into_bytes();
    buf.push(b'\n');
    for r in rows {
        let line =
            r.to_csv_line().map_err(|message| SweepError::Store { path: path.to_path_buf(), message })?;
        buf.extend_from_slice(&line);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // The rename below would replace whatever is at `path`: refuse anything but a regular file
    // (a directory, a device such as /dev/full, a FIFO).
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(SweepError::Store {
                path: path.to_path_buf(),
                message: "exists and is not a regular file; give a file path for the merged CSV".into(),
            });
        }
    }
    let tmp = path.with_extension("csv.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&buf).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fake::FakeRunner;
    use crate::sweep::spec::SweepSpec;

    fn rows() -> Vec<ResultRow> {
        let text = r#"
name = "m"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["c"]
alpha = [0.0, 0.1]
privacy = ["none"]
seed = [0, 1]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;
        let s = SweepSpec::from_toml_str(text, Path::new("m.toml")).unwrap();
        s.cells().iter().map(|c| FakeRunner::default().run(c).unwrap()).collect()
    }

    #[test]
    fn duplicates_collapse_and_conflicts_are_errors() {
        let r = rows();
        let a = ("a.csv".to_string(), r[..3].to_vec());
        let mut b_rows = r[2..].to_vec();
        b_rows[0].wall_s = Some(123.0); // timing differs: not a conflict
        let b = ("b.csv".to_string(), b_rows);
        let m = merge_rows(&[a.clone(), b]).unwrap();
        assert_eq!(m.len(), 4);
        let mut bad = r[2].clone();
        bad.success = Some(0.123);
        let e = merge_rows(&[a, ("c.csv".into(), vec![bad])]).unwrap_err().to_string();
        assert!(e.contains("a.csv") && e.contains("c.csv") && e.contains("success"), "{e}");
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        write_results(&p, &rows()).unwrap();
        assert_eq!(read_results(&p).unwrap(), rows());
    }
}
