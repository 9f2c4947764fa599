//! Merging results files (shards, reruns) into one, deduplicated by `config_hash`.
//!
//! Per file, a cell's row is its last successful one (else its last failed one). Across files, a
//! success beats a failure; two successes must report the same results (everything but timing
//! and provenance), else the merge stops with a conflict error naming both files.
//!
//! Files are merged in two streaming passes ([`merge_files_to`]): the first reads every row once
//! and keeps, per cell, only where its chosen row is (file, byte offset); the second copies the
//! chosen rows to the output. Memory grows with the number of cells (a hash and a location each,
//! ≈ 100 bytes), not with the rows: 10⁶ rows merge in a few hundred MB.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::row::read_header;
use super::store::{latest_per_cell, ResultRow, SCHEMA_VERSION};
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

/// One input of a file merge.
struct Source {
    path: PathBuf,
    headers: csv::StringRecord,
    version: u32,
}

/// Where a cell's chosen row is: input `file`, byte `offset`, and whether it succeeded.
#[derive(Debug, Clone, Copy)]
struct Loc {
    file: usize,
    offset: u64,
    ok: bool,
}

/// The first pass of a merge: every input's header, and per cell the location of its row.
struct Index {
    sources: Vec<Source>,
    chosen: HashMap<String, Loc>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io { path: path.to_path_buf(), source }
}

fn reader(path: &Path) -> Result<csv::Reader<BufReader<File>>, SweepError> {
    let f = File::open(path).map_err(io_err(path))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, f)))
}

fn ends_with_newline(path: &Path) -> Result<bool, SweepError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1)).map_err(io_err(path))?;
    let mut b = [0u8];
    f.read_exact(&mut b).map_err(io_err(path))?;
    Ok(b[0] == b'\n')
}

impl Source {
    /// The row starting at byte `offset` (a location found by the first pass).
    fn row_at(&self, offset: u64) -> Result<ResultRow, SweepError> {
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io_err(&self.path))?;
        let mut rdr =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(BufReader::new(f));
        let mut rec = csv::StringRecord::new();
        let bad = |message: String| SweepError::Store { path: self.path.clone(), message };
        if !rdr.read_record(&mut rec).map_err(|e| bad(e.to_string()))? {
            return Err(bad(format!("no row at byte {offset} (did the file change during the merge?)")));
        }
        rec.deserialize(Some(&self.headers)).map_err(|e| bad(format!("byte {offset}: {e}")))
    }

    /// Parses and checks one record as [`read_results`](super::store::read_results) does.
    fn parse(&self, rec: &csv::StringRecord, torn: bool) -> Result<ResultRow, String> {
        if torn {
            return Err("no trailing newline".into());
        }
        if rec.len() != self.headers.len() {
            return Err(format!("{} fields, expected {}", rec.len(), self.headers.len()));
        }
        match rec.deserialize::<ResultRow>(Some(&self.headers)) {
            Ok(row) if (1..=SCHEMA_VERSION).contains(&row.schema_version) => Ok(row),
            Ok(row) => Err(format!("schema_version {}", row.schema_version)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Reads one input's rows and returns, per cell, its row in this file (the last successful one,
/// else the last failed one), in file order. A torn last line is skipped with a warning.
fn scan_file(src: &Source, file: usize) -> Result<Vec<(String, Loc)>, SweepError> {
    let mut rdr = reader(&src.path)?;
    rdr.headers().map_err(|e| SweepError::Store { path: src.path.clone(), message: e.to_string() })?;
    let newline_at_end = ends_with_newline(&src.path)?;
    let mut latest: HashMap<String, Loc> = HashMap::new();
    let mut cur = csv::StringRecord::new();
    let mut prev = csv::StringRecord::new();
    let mut have_prev = false;
    let mut take = |rec: &csv::StringRecord, last: bool| -> Result<(), SweepError> {
        let pos = rec.position().cloned().unwrap_or_else(csv::Position::new);
        match src.parse(rec, last && !newline_at_end) {
            Ok(row) => {
                let loc = Loc { file, offset: pos.byte(), ok: row.is_ok() };
                match latest.entry(row.config_hash) {
                    Entry::Vacant(v) => {
                        v.insert(loc);
                    }
                    Entry::Occupied(mut o) => {
                        if loc.ok || !o.get().ok {
                            o.insert(loc);
                        }
                    }
                }
                Ok(())
            }
            Err(msg) if last => {
                eprintln!(
                    "warning: {}: line {}: torn last row ({msg}); skipping it",
                    src.path.display(),
                    pos.line()
                );
                Ok(())
            }
            Err(msg) => Err(SweepError::Store {
                path: src.path.clone(),
                message: format!("line {}: bad row: {msg}", pos.line()),
            }),
        }
    };
    loop {
        match rdr.read_record(&mut cur) {
            Ok(true) => {
                if have_prev {
                    take(&prev, false)?;
                }
                std::mem::swap(&mut cur, &mut prev);
                have_prev = true;
            }
            Ok(false) => {
                if have_prev {
                    take(&prev, true)?;
                }
                break;
            }
            Err(e) => {
                // Unreadable bytes: fine only as the file's torn end.
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                if have_prev {
                    take(&prev, false)?;
                }
                let more = !matches!(rdr.read_record(&mut cur), Ok(false));
                if more {
                    return Err(SweepError::Store {
                        path: src.path.clone(),
                        message: format!("line {line}: bad row: {e}"),
                    });
                }
                eprintln!("warning: {}: line {line}: torn last row ({e}); skipping it", src.path.display());
                break;
            }
        }
    }
    let mut rows: Vec<(String, Loc)> = latest.into_iter().collect();
    rows.sort_by_key(|(_, l)| l.offset);
    Ok(rows)
}

/// The first pass over `inputs`, in order, applying the rules of [`merge_rows`].
fn index(inputs: &[PathBuf]) -> Result<Index, SweepError> {
    let mut sources: Vec<Source> = Vec::with_capacity(inputs.len());
    let mut chosen: HashMap<String, Loc> = HashMap::new();
    for (file, path) in inputs.iter().enumerate() {
        let mut rdr = reader(path)?;
        let (header, version) = read_header(path, &mut rdr)?;
        sources.push(Source { path: path.clone(), headers: csv::StringRecord::from(header), version });
        for (hash, loc) in scan_file(&sources[file], file)? {
            match chosen.entry(hash) {
                Entry::Vacant(v) => {
                    v.insert(loc);
                }
                Entry::Occupied(mut o) => {
                    let prev = *o.get();
                    if prev.ok && loc.ok {
                        let a = sources[prev.file].row_at(prev.offset)?;
                        let b = sources[file].row_at(loc.offset)?;
                        a.same_results(&b).map_err(|what| SweepError::Conflict {
                            hash: o.key().clone(),
                            first: sources[prev.file].path.display().to_string(),
                            second: path.display().to_string(),
                            what,
                        })?;
                    } else if loc.ok || !prev.ok {
                        o.insert(loc);
                    }
                }
            }
        }
    }
    Ok(Index { sources, chosen })
}

impl Index {
    /// The second pass: calls `emit` with each chosen row's source and record, in input order.
    fn for_each_chosen(
        &self,
        mut emit: impl FnMut(&Source, &csv::StringRecord) -> Result<(), SweepError>,
    ) -> Result<(), SweepError> {
        for (file, src) in self.sources.iter().enumerate() {
            let Some(hash_col) = src.headers.iter().position(|h| h == "config_hash") else { continue };
            let mut rdr = reader(&src.path)?;
            let mut rec = csv::StringRecord::new();
            loop {
                match rdr.read_record(&mut rec) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) if e.is_io_error() => {
                        return Err(SweepError::Store { path: src.path.clone(), message: e.to_string() })
                    }
                    Err(_) => continue, // a torn end, skipped by the first pass
                }
                let (Some(hash), Some(pos)) = (rec.get(hash_col), rec.position()) else { continue };
                if let Some(loc) = self.chosen.get(hash) {
                    if loc.file == file && loc.offset == pos.byte() {
                        emit(src, &rec)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads and merges results files (rows in input order; see [`merge_files_to`] for large merges).
pub fn merge_files(inputs: &[PathBuf]) -> Result<Vec<ResultRow>, SweepError> {
    let index = index(inputs)?;
    let mut rows = Vec::with_capacity(index.chosen.len());
    index.for_each_chosen(|src, rec| {
        let row = rec
            .deserialize(Some(&src.headers))
            .map_err(|e| SweepError::Store { path: src.path.clone(), message: e.to_string() })?;
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// What [`merge_files_to`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeSummary {
    pub rows: usize,
    pub failed: usize,
}

/// Merges results files straight into the results file `out` (atomically), streaming: rows of
/// current-schema inputs are copied as they are, older ones converted. Rows are in input order.
pub fn merge_files_to(inputs: &[PathBuf], out: &Path) -> Result<MergeSummary, SweepError> {
    let index = index(inputs)?;
    let failed = index.chosen.values().filter(|l| !l.ok).count();
    let rows = index.chosen.len();
    let (tmp, file) = create_output(out)?;
    let io = io_err(out);
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(BufWriter::with_capacity(1 << 20, file));
    let csv_err = |e: csv::Error| SweepError::Store { path: out.to_path_buf(), message: e.to_string() };
    w.write_record(ResultRow::header()).map_err(csv_err)?;
    index.for_each_chosen(|src, rec| {
        if src.version == SCHEMA_VERSION {
            w.write_record(rec).map_err(csv_err)
        } else {
            let row: ResultRow = rec
                .deserialize(Some(&src.headers))
                .map_err(|e| SweepError::Store { path: src.path.clone(), message: e.to_string() })?;
            w.serialize(row).map_err(csv_err)
        }
    })?;
    let file =
        w.into_inner().map_err(|e| io(e.into_error()))?.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(&io)?;
    std::fs::rename(&tmp, out).map_err(&io)?;
    Ok(MergeSummary { rows, failed })
}

/// Creates the temporary file a results file is written through (refusing a target that is not
/// a regular file: the rename would replace a directory, a device such as /dev/full, a FIFO).
fn create_output(path: &Path) -> Result<(PathBuf, File), SweepError> {
    let io = io_err(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(&io)?;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(SweepError::Store {
                path: path.to_path_buf(),
                message: "exists and is not a regular file; give a file path for the merged CSV".into(),
            });
        }
    }
    let tmp = path.with_extension("csv.tmp");
    let f = File::create(&tmp).map_err(&io)?;
    Ok((tmp, f))
}

/// Writes rows as a complete results file, atomically (temporary file, fsync, rename).
pub fn write_results(path: &Path, rows: &[ResultRow]) -> Result<(), SweepError> {
    let io = io_err(path);
    let (tmp, f) = create_output(path)?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(BufWriter::with_capacity(1 << 20, f));
    let csv_err = |e: csv::Error| SweepError::Store { path: path.to_path_buf(), message: e.to_string() };
    w.write_record(ResultRow::header()).map_err(csv_err)?;
    for r in rows {
        w.serialize(r).map_err(csv_err)?;
    }
    let f = w.into_inner().map_err(|e| io(e.into_error()))?.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(&io)?;
    std::fs::rename(&tmp, path).map_err(&io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fake::FakeRunner;
    use crate::sweep::spec::SweepSpec;
    use crate::sweep::store::{read_results, ResultStore};

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

    /// The streaming file merge applies merge_rows's rules: per file the last success (else the
    /// last failure), across files success over failure, conflicts named; torn ends skipped.
    #[test]
    fn file_merge_follows_the_row_rules() {
        let dir = tempfile::tempdir().unwrap();
        let r = rows();
        let failed = |i: usize| {
            let mut f = r[i].clone();
            f.error = format!("failure {i}");
            f.success = None;
            f
        };
        let write = |name: &str, rows: &[ResultRow]| {
            let p = dir.path().join(name);
            let st = ResultStore::open(&p).unwrap();
            for row in rows {
                st.append(row).unwrap();
            }
            p
        };
        // a: 0 ok, 1 failed then ok, 2 failed; b: 2 ok, 3 failed, 0 ok again (slower).
        let a = write("a.csv", &[r[0].clone(), failed(1), r[1].clone(), failed(2)]);
        let mut slow = r[0].clone();
        slow.wall_s = Some(99.0);
        let b = write("b.csv", &[r[2].clone(), failed(3), slow]);
        let mut bytes = std::fs::read(&b).unwrap();
        bytes.extend_from_slice(b"sweep,torn");
        std::fs::write(&b, bytes).unwrap();
        let out = dir.path().join("m.csv");
        let m = merge_files_to(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(m, MergeSummary { rows: 4, failed: 1 });
        let mut got = read_results(&out).unwrap();
        got.sort_by(|x, y| x.config_hash.cmp(&y.config_hash));
        let sources =
            [("a".to_string(), read_results(&a).unwrap()), ("b".to_string(), read_results(&b).unwrap())];
        let mut want = merge_rows(&sources).unwrap();
        want.sort_by(|x, y| x.config_hash.cmp(&y.config_hash));
        assert_eq!(got, want);
        assert_eq!(merge_files(&[a.clone(), b.clone()]).unwrap().len(), 4);
        // A second successful row with other results is a conflict naming both files.
        let mut other = r[1].clone();
        other.success = Some(0.5);
        let c = write("c.csv", &[other]);
        let e = merge_files_to(&[a.clone(), c], &out).unwrap_err().to_string();
        assert!(e.contains("a.csv") && e.contains("c.csv") && e.contains("success"), "{e}");
        // A bad row before the end is an error with its line.
        let bad = dir.path().join("bad.csv");
        let text = std::fs::read_to_string(&a).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "x,y");
        std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
        let e = merge_files_to(&[bad], &out).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("line 3"), "{e}");
    }
}
