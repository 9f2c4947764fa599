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

use super::row::{one_line, read_rows_versioned};
pub use super::row::{read_results, ResultRow, SCHEMA_VERSION};
use super::SweepError;

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
        // One writer per results file: an exclusive advisory lock (flock), held while the store
        // is open and released by the kernel when the process ends, however it ends (a killed
        // or requeued task leaves no stale lock). Two sweeps appending to one file would each
        // skip only the cells *they* saw done and run the rest twice.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SweepError::Store {
                    path,
                    message: "another crowdout process is writing this results file (it holds its lock); \
                              wait for it, or give this run another --out or --shard"
                        .into(),
                })
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
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
    use crate::sweep::row::{csv_fields, ADDED_IN_V2, ADDED_IN_V3};
    use crate::sweep::spec::Cell;
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
    fn a_second_writer_of_the_same_file_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let first = ResultStore::open(&path).unwrap();
        let e = ResultStore::open(&path).err().expect("a second open must be refused").to_string();
        assert!(e.contains("results.csv") && e.contains("another crowdout process"), "{e}");
        // Readers are not blocked.
        assert!(read_results(&path).unwrap().is_empty());
        drop(first);
        ResultStore::open(&path).unwrap();
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
