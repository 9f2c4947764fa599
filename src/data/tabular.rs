//! Tabular data: UCI Adult and generic CSV files, encoded to `f32 [N, D]`.
//!
//! # Encoding (fitted on the training part only)
//! - A **numeric** column is standardised: `z = (x − μ) / s` with μ and `s` the mean and the
//!   population standard deviation (divisor N) of the training rows. A column constant on train
//!   (`s = 0`) is only centred. `Split::feature_std` holds `s`, so one unit of `z` is `s` raw units.
//! - A **categorical** column becomes one 0/1 indicator per category seen in the training rows,
//!   in sorted order, named `column=value`. Indicators are *not* standardised; their
//!   `feature_std` entry is their training std `sqrt(p(1−p))`. A test value never seen in train
//!   encodes as all zeros.
//!
//! # Adult
//! The 14 UCI features: 6 numeric (age, fnlwgt, education-num, capital-gain, capital-loss,
//! hours-per-week) and 8 categorical, giving 104 features on the full data. Rows with a missing
//! value `?` are **dropped** (45,222 of 48,842 rows are complete: 30,162 train, 15,060 test), the
//! common practice. `adult.test`'s first line (`|1x3 Cross validator`) is skipped and its labels'
//! trailing `.` stripped. Label 1 is `>50K`, 0 is `<=50K`.
//!
//! # CSV
//! A header row names the columns; `label_column` picks the label. A column is numeric when every
//! value in it parses as a finite number, otherwise categorical. Rows are split into train and
//! test by a seeded shuffle (ChaCha20, stream `Data`): the first `round(N·test_fraction)` shuffled
//! rows are the test part, the rest train, each in shuffled order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;

use super::{files, labels_tensor, table_tensor, DataError, Dataset, Result, Split};
use crate::rng::{stream, Stream};

/// One cell after typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num(f64),
    Cat(String),
}

/// How one column is encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnEncoding {
    Numeric { name: String, mean: f64, std: f64 },
    OneHot { name: String, categories: Vec<String>, freq: Vec<f64> },
}

/// Per-column encoding fitted on training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    pub columns: Vec<ColumnEncoding>,
}

impl Encoder {
    /// Fit on `rows` (each `names.len()` cells; a column's kind is that of its cells).
    /// `numeric[j]` says whether column j is numeric.
    pub fn fit(names: &[String], numeric: &[bool], rows: &[Vec<Cell>]) -> Encoder {
        let n = rows.len().max(1) as f64;
        let columns = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                if numeric[j] {
                    let vals = rows.iter().map(|r| num(&r[j]));
                    let mean = vals.clone().sum::<f64>() / n;
                    let var = vals.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    ColumnEncoding::Numeric { name: name.clone(), mean, std: var.sqrt() }
                } else {
                    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                    for r in rows {
                        if let Cell::Cat(s) = &r[j] {
                            *counts.entry(s.clone()).or_default() += 1;
                        }
                    }
                    let categories: Vec<String> = counts.keys().cloned().collect();
                    let freq = counts.values().map(|&c| c as f64 / n).collect();
                    ColumnEncoding::OneHot { name: name.clone(), categories, freq }
                }
            })
            .collect();
        Encoder { columns }
    }

    /// Number of encoded features.
    pub fn dim(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                ColumnEncoding::Numeric { .. } => 1,
                ColumnEncoding::OneHot { categories, .. } => categories.len(),
            })
            .sum()
    }

    pub fn feature_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|c| match c {
                ColumnEncoding::Numeric { name, .. } => vec![name.clone()],
                ColumnEncoding::OneHot { name, categories, .. } => {
                    categories.iter().map(|v| format!("{name}={v}")).collect()
                }
            })
            .collect()
    }

    /// Training std of each encoded feature before standardisation (see the module doc).
    pub fn feature_std(&self) -> Vec<f64> {
        self.columns
            .iter()
            .flat_map(|c| match c {
                ColumnEncoding::Numeric { std, .. } => vec![*std],
                ColumnEncoding::OneHot { freq, .. } => freq.iter().map(|p| (p * (1.0 - p)).sqrt()).collect(),
            })
            .collect()
    }

    /// Encode rows into row-major `f32` values (`rows.len() × dim()`).
    pub fn transform(&self, rows: &[Vec<Cell>]) -> Vec<f32> {
        let d = self.dim();
        let mut out = Vec::with_capacity(rows.len() * d);
        for r in rows {
            for (j, c) in self.columns.iter().enumerate() {
                match c {
                    ColumnEncoding::Numeric { mean, std, .. } => {
                        let s = if *std > 0.0 { *std } else { 1.0 };
                        out.push(((num(&r[j]) - mean) / s) as f32);
                    }
                    ColumnEncoding::OneHot { categories, .. } => {
                        let hit = match &r[j] {
                            Cell::Cat(v) => categories.binary_search(v).ok(),
                            Cell::Num(_) => None,
                        };
                        out.extend((0..categories.len()).map(|k| if Some(k) == hit { 1.0f32 } else { 0.0 }));
                    }
                }
            }
        }
        out
    }
}

fn num(c: &Cell) -> f64 {
    match c {
        Cell::Num(v) => *v,
        Cell::Cat(_) => f64::NAN,
    }
}

/// Encode train/test rows with an encoder fitted on train, into a [`Split`].
fn encode_split(
    name: String,
    names: &[String],
    numeric: &[bool],
    train: (Vec<Vec<Cell>>, Vec<i64>),
    test: (Vec<Vec<Cell>>, Vec<i64>),
    num_classes: i64,
) -> Result<Split> {
    let enc = Encoder::fit(names, numeric, &train.0);
    let d = enc.dim();
    let mk = |rows: &[Vec<Cell>], labels: &[i64]| -> Result<Dataset> {
        Ok(Dataset {
            x: table_tensor(&enc.transform(rows), rows.len(), d)?,
            y: labels_tensor(labels)?,
            num_classes,
        })
    };
    Ok(Split {
        name,
        train: mk(&train.0, &train.1)?,
        test: mk(&test.0, &test.1)?,
        feature_names: enc.feature_names(),
        feature_std: enc.feature_std(),
        vocab: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Adult

/// The 14 Adult feature columns, in file order, and whether each is numeric.
pub const ADULT_COLUMNS: [(&str, bool); 14] = [
    ("age", true),
    ("workclass", false),
    ("fnlwgt", true),
    ("education", false),
    ("education-num", true),
    ("marital-status", false),
    ("occupation", false),
    ("relationship", false),
    ("race", false),
    ("sex", false),
    ("capital-gain", true),
    ("capital-loss", true),
    ("hours-per-week", true),
    ("native-country", false),
];

/// Rows and labels of one Adult file, plus how many rows with `?` were dropped.
pub fn parse_adult(path: &Path, text: &str) -> Result<(Vec<Vec<Cell>>, Vec<i64>, usize)> {
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut dropped = 0;
    for (i, line) in text.lines().enumerate() {
        let lineno = i as u64 + 1;
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with('|')) {
            continue;
        }
        let bad = |what: String| DataError::Row { path: path.to_path_buf(), line: lineno, what };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 15 {
            return Err(bad(format!(
                "{} fields, expected 15 (14 features and the income label)",
                fields.len()
            )));
        }
        if fields.contains(&"?") {
            dropped += 1;
            continue;
        }
        let label = match fields[14].trim_end_matches('.') {
            "<=50K" => 0,
            ">50K" => 1,
            other => return Err(bad(format!("label `{other}` is neither `<=50K` nor `>50K`"))),
        };
        let mut row = Vec::with_capacity(14);
        for (j, (name, numeric)) in ADULT_COLUMNS.iter().enumerate() {
            let f = fields[j];
            row.push(if *numeric {
                match f.parse::<f64>() {
                    Ok(v) if v.is_finite() => Cell::Num(v),
                    _ => return Err(bad(format!("column `{name}` value `{f}` is not a number"))),
                }
            } else {
                Cell::Cat(f.to_string())
            });
        }
        rows.push(row);
        labels.push(label);
    }
    if rows.is_empty() {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            what: "no complete Adult rows (empty or truncated file)".into(),
        });
    }
    Ok((rows, labels, dropped))
}

/// Load `adult.data` and `adult.test` (raw or gzipped) from `dir`, verifying against the pins
/// `<key>/adult.data`, `<key>/adult.test` when `verify`.
pub fn load_adult(key: &str, dir: &Path, verify: bool) -> Result<Split> {
    let read = |f: &str| -> Result<(PathBuf, String)> {
        let (p, b) = files::read_pinned(dir, key, f, verify)?;
        let s = String::from_utf8(b)
            .map_err(|e| DataError::Format { path: p.clone(), what: format!("not UTF-8 text: {e}") })?;
        Ok((p, s))
    };
    let (ptrain, train) = read("adult.data")?;
    let (ptest, test) = read("adult.test")?;
    let (xtr, ytr, _) = parse_adult(&ptrain, &train)?;
    let (xte, yte, _) = parse_adult(&ptest, &test)?;
    let names: Vec<String> = ADULT_COLUMNS.iter().map(|(n, _)| n.to_string()).collect();
    let numeric: Vec<bool> = ADULT_COLUMNS.iter().map(|(_, b)| *b).collect();
    encode_split(key.to_string(), &names, &numeric, (xtr, ytr), (xte, yte), 2)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// A generic CSV dataset (fields as in `DatasetSpec::Csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub path: PathBuf,
    pub label_column: String,
    pub separator: char,
    pub positive_label: Option<String>,
    pub test_fraction: f64,
    pub seed: u64,
}

/// Load a CSV file (raw or gzipped) with a header row; see the module doc for typing, encoding
/// and the split.
pub fn load_csv(o: &CsvOptions) -> Result<Split> {
    let path = &o.path;
    let spec_err = |what: String| DataError::Spec(format!("{}: {what}", path.display()));
    if !o.separator.is_ascii() {
        return Err(spec_err(format!("separator `{}` is not a single ASCII character", o.separator)));
    }
    if !(o.test_fraction > 0.0 && o.test_fraction < 1.0) {
        return Err(spec_err(format!("test fraction {} is not in (0, 1)", o.test_fraction)));
    }
    let bytes = files::read_maybe_gz(path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(o.separator as u8)
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(&bytes[..]);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| DataError::Format {
            path: path.clone(),
            what: format!("cannot read the header row: {e}"),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let label_idx = header.iter().position(|h| *h == o.label_column).ok_or_else(|| DataError::Format {
        path: path.clone(),
        what: format!(
            "label column `{}` is not in the header (columns: {}); pass --label-column, and --separator if the header looks like one column",
            o.label_column,
            header.join(", ")
        ),
    })?;
    let mut raw: Vec<Vec<String>> = Vec::new();
    let mut raw_labels: Vec<String> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            DataError::Row { path: path.clone(), line, what: format!("{e}") }
        })?;
        lines.push(rec.position().map(|p| p.line()).unwrap_or(0));
        let mut row: Vec<String> = rec.iter().map(str::to_string).collect();
        raw_labels.push(row.remove(label_idx));
        raw.push(row);
    }
    if raw.len() < 2 {
        return Err(DataError::Format {
            path: path.clone(),
            what: format!("{} data rows; need at least 2 to split", raw.len()),
        });
    }
    let names: Vec<String> =
        header.iter().enumerate().filter(|(j, _)| *j != label_idx).map(|(_, h)| h.clone()).collect();
    let numeric: Vec<bool> = (0..names.len())
        .map(|j| raw.iter().all(|r| r[j].parse::<f64>().map(|v| v.is_finite()).unwrap_or(false)))
        .collect();
    // A column that is numeric except for NaN, ±inf or empty values is an error, not silently
    // categorical: name the file, line, column and value.
    for (j, name) in names.iter().enumerate() {
        let parses = |v: &str| v.is_empty() || v.parse::<f64>().is_ok();
        let looks_numeric = !numeric[j]
            && raw.iter().all(|r| parses(&r[j]))
            && raw.iter().any(|r| r[j].parse::<f64>().map(|v| v.is_finite()).unwrap_or(false));
        if looks_numeric {
            if let Some((i, r)) = raw
                .iter()
                .enumerate()
                .find(|(_, r)| !r[j].parse::<f64>().map(|v| v.is_finite()).unwrap_or(false))
            {
                let what = if r[j].is_empty() { "is empty".to_string() } else { format!("is `{}`", r[j]) };
                return Err(DataError::Row {
                    path: path.clone(),
                    line: lines[i],
                    what: format!("numeric column `{name}` {what}; every value must be a finite number (remove or impute the row)"),
                });
            }
        }
    }
    let cells: Vec<Vec<Cell>> = raw
        .into_iter()
        .map(|r| {
            r.into_iter()
                .enumerate()
                .map(|(j, v)| match numeric[j] {
                    true => Cell::Num(v.parse::<f64>().unwrap_or(f64::NAN)),
                    false => Cell::Cat(v),
                })
                .collect()
        })
        .collect();
    let (labels, num_classes) =
        encode_labels(path, &raw_labels, o.positive_label.as_deref(), &o.label_column)?;

    let n = cells.len();
    let n_test = ((n as f64) * o.test_fraction).round() as usize;
    if n_test == 0 || n_test >= n {
        return Err(spec_err(format!(
            "test fraction {} of {n} rows leaves an empty train or test part",
            o.test_fraction
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(Some(o.seed), Stream::Data));
    let pick = |ix: &[usize]| -> (Vec<Vec<Cell>>, Vec<i64>) {
        (ix.iter().map(|&i| cells[i].clone()).collect(), ix.iter().map(|&i| labels[i]).collect())
    };
    let test = pick(&order[..n_test]);
    let train = pick(&order[n_test..]);
    let fname = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    encode_split(format!("csv:{fname}"), &names, &numeric, train, test, num_classes)
}

/// Map raw label strings to `0..K`.
fn encode_labels(
    path: &Path,
    raw: &[String],
    positive: Option<&str>,
    column: &str,
) -> Result<(Vec<i64>, i64)> {
    if let Some(p) = positive {
        if !raw.iter().any(|l| l == p) {
            let seen: BTreeSet<&str> = raw.iter().map(String::as_str).take(1000).collect();
            return Err(DataError::Format {
                path: path.to_path_buf(),
                what: format!(
                    "positive label `{p}` never occurs in column `{column}` (values include: {})",
                    seen.into_iter().take(10).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        return Ok((raw.iter().map(|l| (l == p) as i64).collect(), 2));
    }
    let distinct: BTreeSet<&str> = raw.iter().map(String::as_str).collect();
    let mut classes: Vec<&str> = distinct.into_iter().collect();
    if classes.iter().all(|c| c.parse::<i64>().is_ok()) {
        classes.sort_by_key(|c| c.parse::<i64>().unwrap_or(0));
    }
    if classes.len() < 2 {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            what: format!("label column `{column}` has {} distinct value(s); need at least 2", classes.len()),
        });
    }
    let index: BTreeMap<&str, i64> = classes.iter().enumerate().map(|(i, c)| (*c, i as i64)).collect();
    Ok((raw.iter().map(|l| index[l.as_str()]).collect(), classes.len() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Cell {
        Cell::Cat(v.into())
    }

    #[test]
    fn encoder_standardises_numeric_and_one_hots_categories_from_train() {
        let names = vec!["a".to_string(), "c".to_string()];
        let rows = vec![
            vec![Cell::Num(1.0), s("x")],
            vec![Cell::Num(3.0), s("y")],
            vec![Cell::Num(5.0), s("x")],
            vec![Cell::Num(7.0), s("x")],
        ];
        let enc = Encoder::fit(&names, &[true, false], &rows);
        assert_eq!(enc.feature_names(), vec!["a", "c=x", "c=y"]);
        // mean 4, population variance (9+1+1+9)/4 = 5.
        let std = enc.feature_std();
        assert!((std[0] - 5f64.sqrt()).abs() < 1e-12);
        assert!((std[1] - (0.75f64 * 0.25).sqrt()).abs() < 1e-12);
        let t =
            enc.transform(&[vec![Cell::Num(4.0 + 5f64.sqrt()), s("y")], vec![Cell::Num(4.0), s("unseen")]]);
        assert_eq!(t.len(), 6);
        assert!((t[0] - 1.0).abs() < 1e-6);
        assert_eq!(&t[1..3], &[0.0, 1.0]);
        assert_eq!(&t[3..6], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn constant_column_is_only_centred() {
        let rows = vec![vec![Cell::Num(2.0)], vec![Cell::Num(2.0)]];
        let enc = Encoder::fit(&["k".into()], &[true], &rows);
        assert_eq!(enc.transform(&rows), vec![0.0, 0.0]);
        assert_eq!(enc.feature_std(), vec![0.0]);
    }

    #[test]
    fn adult_rows_parse_drop_missing_and_strip_dots() {
        let text = "|1x3 Cross validator\n\
            25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.\n\
            38, ?, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, United-States, <=50K.\n\
            28, Local-gov, 336951, Assoc-acdm, 12, Married-civ-spouse, Protective-serv, Husband, White, Male, 0, 0, 40, United-States, >50K.\n\n";
        let (rows, labels, dropped) = parse_adult(Path::new("adult.test"), text).unwrap();
        assert_eq!((rows.len(), dropped), (2, 1));
        assert_eq!(labels, vec![0, 1]);
        assert_eq!(rows[0][0], Cell::Num(25.0));
        assert_eq!(rows[1][13], s("United-States"));
    }

    #[test]
    fn adult_bad_rows_name_file_and_line() {
        let p = Path::new("/d/adult.data");
        let e = parse_adult(p, "39, State-gov, 77516\n").unwrap_err().to_string();
        assert!(e.contains("/d/adult.data, line 1") && e.contains("3 fields"), "{e}");
        let e = parse_adult(p, "x, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("`age`"), "{e}");
        let e = parse_adult(p, "\n39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, maybe\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("maybe"), "{e}");
        assert!(parse_adult(p, "").unwrap_err().to_string().contains("no complete"));
    }

    #[test]
    fn labels_sorted_numerically_or_by_positive_label() {
        let p = Path::new("f.csv");
        let raw: Vec<String> = ["10", "2", "2", "1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(encode_labels(p, &raw, None, "y").unwrap(), (vec![2, 1, 1, 0], 3));
        let raw: Vec<String> = ["no", "yes", "no"].iter().map(|s| s.to_string()).collect();
        assert_eq!(encode_labels(p, &raw, None, "y").unwrap(), (vec![0, 1, 0], 2));
        assert_eq!(encode_labels(p, &raw, Some("no"), "y").unwrap(), (vec![1, 0, 1], 2));
        assert!(encode_labels(p, &raw, Some("Yes"), "y")
            .unwrap_err()
            .to_string()
            .contains("`Yes` never occurs"));
        let one: Vec<String> = vec!["a".into(), "a".into()];
        assert!(encode_labels(p, &one, None, "y").is_err());
    }

    #[test]
    fn csv_nan_inf_or_empty_in_a_numeric_column_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        for (bad, shown) in [("NaN", "`NaN`"), ("inf", "`inf`"), ("", "is empty")] {
            let path = dir.path().join("t.csv");
            std::fs::write(&path, format!("x,c,label\n1,a,0\n2,b,1\n{bad},a,0\n4,b,1\n")).unwrap();
            let o = CsvOptions {
                path: path.clone(),
                label_column: "label".into(),
                separator: ',',
                positive_label: None,
                test_fraction: 0.25,
                seed: 0,
            };
            let e = load_csv(&o).unwrap_err().to_string();
            assert!(
                e.contains("t.csv") && e.contains("line 4") && e.contains("`x`") && e.contains(shown),
                "{e}"
            );
        }
        // A categorical column may hold any text, including an empty value.
        let path = dir.path().join("ok.csv");
        std::fs::write(&path, "x,c,label\n1,a,0\n2,,1\n3,nan-ish,0\n4,b,1\n").unwrap();
        let o = CsvOptions {
            path,
            label_column: "label".into(),
            separator: ',',
            positive_label: None,
            test_fraction: 0.25,
            seed: 0,
        };
        assert!(load_csv(&o).is_ok());
    }
}
