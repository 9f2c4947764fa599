//! Datasets: loading (IDX, Adult, generic CSV, CIFAR-10 binary, synthetic), fetching with pinned
//! sha256, splits and normalisation.
//!
//! Conventions every other module relies on:
//! - images are `f32` in `[0, 1]`, shape `[N, C, H, W]` (no mean/std normalisation, so triggers
//!   are defined in pixel units);
//! - tabular features are `f32`, shape `[N, D]`, standardised with statistics fitted on train only;
//! - labels are `i64`, shape `[N]`, in `0..num_classes`;
//! - tensors live on the CPU; the trainer moves them to the device.
//!
//! Entry points: [`load`] (a [`DatasetSpec`] → [`Split`]), [`fetch`] and [`verify`] (the pinned,
//! fetchable datasets), [`DataDir::from_env`] (where fetched data lives).
//!
//! # Where data lives
//! - Fetchable datasets (`fashion-mnist`, `mnist`, `adult`) live in `<data dir>/<name>/`, where the
//!   data dir is `$CROWDOUT_DATA` or else `./datasets/cache` *relative to the current directory*
//!   (the repository root when run from there, as `make` and `cargo test` do).
//!   [`load`] does **not** download: a missing dataset is an error telling the user to run
//!   `crowdout data fetch <name>`, so that experiments never touch the network by surprise.
//! - Original files from the original hosts work too: put them in `<data dir>/<name>/`, raw or
//!   gzipped, with dashed (`train-images-idx3-ubyte`) or dotted (`train-images.idx3-ubyte`) names.
//!   Pins are on the *decompressed* bytes (`datasets/checksums.sha256`), so originals that differ
//!   only by compression verify. To load files whose content differs, set
//!   `CROWDOUT_SKIP_VERIFY=1` (or pass `--no-verify` to `crowdout data`); see [`LoadOptions`].
//! - Committed fixtures (`fashion-mnist-mini`, `adult-mini`) are found in
//!   `$CROWDOUT_FIXTURES`, else `<crate root at compile time>/datasets/fixtures`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Tensor;

pub mod checksums;
pub mod cifar;
mod fetch;
pub mod files;
pub mod idx;
pub mod relabel;
pub mod synthetic;
pub mod tabular;

pub use fetch::{fetch, verify, Fetchable, FIXTURES};

/// A labelled set of examples.
#[derive(Debug)]
pub struct Dataset {
    /// Features: `[N, C, H, W]` images in `[0, 1]` or `[N, D]` standardised tabular rows.
    pub x: Tensor,
    /// Labels, `i64`, `[N]`.
    pub y: Tensor,
    pub num_classes: i64,
}

impl Dataset {
    pub fn len(&self) -> i64 {
        self.y.size()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one example (without the batch dimension).
    pub fn example_shape(&self) -> Vec<i64> {
        self.x.size()[1..].to_vec()
    }
    /// A cheap copy sharing storage.
    pub fn shallow_clone(&self) -> Self {
        Self { x: self.x.shallow_clone(), y: self.y.shallow_clone(), num_classes: self.num_classes }
    }
    /// Number of examples of each class `0..num_classes`.
    pub fn class_counts(&self) -> Vec<i64> {
        let labels: Vec<i64> = labels_vec(&self.y);
        let mut counts = vec![0i64; self.num_classes.max(0) as usize];
        for l in labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
    /// The first `n` examples (all of them when `n >= len`), copied so the rest can be freed.
    pub fn take_first(&self, n: usize) -> Self {
        let n = (n as i64).min(self.len());
        if n == self.len() {
            return self.shallow_clone();
        }
        Self {
            x: self.x.narrow(0, 0, n).copy(),
            y: self.y.narrow(0, 0, n).copy(),
            num_classes: self.num_classes,
        }
    }
}

fn labels_vec(y: &Tensor) -> Vec<i64> {
    let y = y.to_kind(tch::Kind::Int64).contiguous();
    let n = y.numel();
    let mut out = vec![0i64; n];
    y.copy_data(&mut out, n);
    out
}

/// A train/test pair plus what describes it.
#[derive(Debug)]
pub struct Split {
    pub name: String,
    pub train: Dataset,
    pub test: Dataset,
    /// Names of tabular features after encoding (empty for images).
    pub feature_names: Vec<String>,
    /// Per-feature training standard deviation *before* standardisation (tabular; empty for images).
    pub feature_std: Vec<f64>,
}

/// Errors from loading, verifying and fetching data. Every message names the file (and line,
/// column or flag) at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Wrong header, truncated or trailing bytes, corrupt compression, bad values.
    #[error("{}: {what}", path.display())]
    Format { path: PathBuf, what: String },
    /// A text row that cannot be used.
    #[error("{}, line {line}: {what}", path.display())]
    Row { path: PathBuf, line: u64, what: String },
    #[error(
        "{}: sha256 of its (decompressed) content is {actual}, but datasets/checksums.sha256 pins \
         {key} to {expected}; the file is corrupt or not the expected one (re-fetch it, or set \
         CROWDOUT_SKIP_VERIFY=1 / pass --no-verify if you trust a differing original)",
        path.display()
    )]
    Checksum { path: PathBuf, key: String, expected: String, actual: String },
    /// A fetchable dataset that is not (completely) in the data directory.
    #[error("dataset `{name}` is not in {}: {what}; run `crowdout data fetch {name}` (or datasets/fetch.sh {name}), or point CROWDOUT_DATA at a directory holding {name}/", dir.display())]
    NotFetched { name: String, dir: PathBuf, what: String },
    #[error("fetching `{name}`: {what}")]
    Fetch { name: String, what: String },
    /// A bad dataset specification (name, flag or field).
    #[error("{0}")]
    Spec(String),
    #[error("building tensors: {0}")]
    Tensor(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, DataError>;

/// Where fetched datasets live: `$CROWDOUT_DATA`, else `./datasets/cache` relative to the current
/// directory (made absolute at construction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir(pub PathBuf);

/// Environment variable overriding the data directory.
pub const DATA_ENV: &str = "CROWDOUT_DATA";
/// Environment variable overriding the fixtures directory.
pub const FIXTURES_ENV: &str = "CROWDOUT_FIXTURES";
/// Environment variable that, set to `1`/`true`/`yes`, skips sha256 verification on load.
pub const SKIP_VERIFY_ENV: &str = "CROWDOUT_SKIP_VERIFY";
/// Default data directory, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = "datasets/cache";

impl DataDir {
    /// `$CROWDOUT_DATA` when set and non-empty, else `<current dir>/datasets/cache`.
    pub fn from_env() -> Self {
        match std::env::var_os(DATA_ENV) {
            Some(v) if !v.is_empty() => Self(PathBuf::from(v)),
            _ => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Self(cwd.join(DEFAULT_DATA_DIR))
            }
        }
    }
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// The committed fixtures directory: `$CROWDOUT_FIXTURES`, else
/// `env!("CARGO_MANIFEST_DIR")/datasets/fixtures` (fixed at compile time, so tests and the binary
/// built in the repository both find it).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fixtures")),
    }
}

/// How many examples to keep: the **first** `n` of train and of test, in file order (for CSV
/// specs, in the order after the seeded shuffle). `None` keeps all; a limit above the size keeps
/// all. Statistics for standardisation are fitted on the *whole* train file/part before limiting,
/// so the encoding does not depend on the limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub train: Option<usize>,
    #[serde(default)]
    pub test: Option<usize>,
}

impl Limits {
    pub const NONE: Limits = Limits { train: None, test: None };
}

/// Options of one load beyond the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Check every pinned file against `datasets/checksums.sha256` (default true). Turn off only
    /// for user-supplied originals whose *decompressed* bytes differ from the pins.
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { verify: true }
    }
}

impl LoadOptions {
    /// Default options, with `verify = false` when `CROWDOUT_SKIP_VERIFY` is `1`, `true` or `yes`.
    pub fn from_env() -> Self {
        let skip = std::env::var(SKIP_VERIFY_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Self { verify: !skip }
    }
}

/// Defaults of the CSV spec (one source of truth for serde and the CLI).
pub mod csv_defaults {
    pub const LABEL_COLUMN: &str = "label";
    pub const SEPARATOR: char = ',';
    pub const TEST_FRACTION: f64 = 0.2;
    pub const SEED: u64 = 0;
    pub(crate) fn label_column() -> String {
        LABEL_COLUMN.to_string()
    }
    pub(crate) fn separator() -> char {
        SEPARATOR
    }
    pub(crate) fn test_fraction() -> f64 {
        TEST_FRACTION
    }
}

/// What to load. In TOML/JSON: `{ kind = "fashion-mnist" }`, `{ kind = "csv", path = "bank-full.csv",
/// label-column = "y", separator = ";", positive-label = "yes" }`, `{ kind = "synthetic", shape = [16] }`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields, from = "SpecRepr")]
pub enum DatasetSpec {
    /// Fashion-MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    FashionMnist,
    /// MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    Mnist,
    /// UCI Adult, complete rows only: 30,162 + 15,060, 104 features, 2 classes (fetched).
    Adult,
    /// The committed Fashion-MNIST fixture: 1000 + 300 images, balanced.
    FashionMnistMini,
    /// The committed Adult fixture: the first 300 rows of adult.data and 150 of adult.test.
    AdultMini,
    /// A user's CSV file with a header row, split train/test by a seeded shuffle.
    #[serde(rename_all = "kebab-case")]
    Csv {
        path: PathBuf,
        /// Header name of the label column.
        #[serde(default = "csv_defaults::label_column")]
        label_column: String,
        /// Field separator (one ASCII character).
        #[serde(default = "csv_defaults::separator")]
        separator: char,
        /// With it, label = 1 where the label column equals it and 0 elsewhere; without it, the
        /// distinct labels sorted (numerically if all are integers) become `0..K`.
        #[serde(default)]
        positive_label: Option<String>,
        /// Fraction of rows in the test part, in (0, 1).
        #[serde(default = "csv_defaults::test_fraction")]
        test_fraction: f64,
        /// Seed of the train/test shuffle (stream `Data`).
        #[serde(default)]
        seed: u64,
    },
    /// CIFAR-10 binary version in `dir` (`data_batch_1..5.bin`, `test_batch.bin`); not fetchable.
    Cifar10 { dir: PathBuf },
    /// A Gaussian mixture; see [`synthetic`].
    Synthetic {
        /// Example shape: `[C, H, W]` gives images in `[0,1]`, `[D]` gives standardised tabular rows.
        shape: Vec<i64>,
        #[serde(default = "synthetic::default_classes")]
        classes: i64,
        #[serde(default = "synthetic::default_train")]
        train: usize,
        #[serde(default = "synthetic::default_test")]
        test: usize,
        /// Distance scale between class means in units of the noise standard deviation.
        #[serde(default = "synthetic::default_separation")]
        separation: f64,
        #[serde(default)]
        seed: u64,
    },
}

/// Deserialisation mirror of [`DatasetSpec`]: serde ignores unknown fields beside the tag of a
/// *unit* variant, so the unit variants are empty struct variants here (then rejected).
/// In TOML/JSON: `{ kind = "fashion-mnist" }`, `{ kind = "csv", path = "bank-full.csv",
/// label-column = "y", separator = ";", positive-label = "yes" }`, `{ kind = "synthetic", shape = [16] }`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum SpecRepr {
    /// Fashion-MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    FashionMnist {},
    /// MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    Mnist {},
    /// UCI Adult, complete rows only: 30,162 + 15,060, 104 features, 2 classes (fetched).
    Adult {},
    /// The committed Fashion-MNIST fixture: 1000 + 300 images, balanced.
    FashionMnistMini {},
    /// The committed Adult fixture: the first 300 rows of adult.data and 150 of adult.test.
    AdultMini {},
    /// A user's CSV file with a header row, split train/test by a seeded shuffle.
    #[serde(rename_all = "kebab-case")]
    Csv {
        path: PathBuf,
        /// Header name of the label column.
        #[serde(default = "csv_defaults::label_column")]
        label_column: String,
        /// Field separator (one ASCII character).
        #[serde(default = "csv_defaults::separator")]
        separator: char,
        /// With it, label = 1 where the label column equals it and 0 elsewhere; without it, the
        /// distinct labels sorted (numerically if all are integers) become `0..K`.
        #[serde(default)]
        positive_label: Option<String>,
        /// Fraction of rows in the test part, in (0, 1).
        #[serde(default = "csv_defaults::test_fraction")]
        test_fraction: f64,
        /// Seed of the train/test shuffle (stream `Data`).
        #[serde(default)]
        seed: u64,
    },
    /// CIFAR-10 binary version in `dir` (`data_batch_1..5.bin`, `test_batch.bin`); not fetchable.
    Cifar10 { dir: PathBuf },
    /// A Gaussian mixture; see [`synthetic`].
    Synthetic {
        /// Example shape: `[C, H, W]` gives images in `[0,1]`, `[D]` gives standardised tabular rows.
        shape: Vec<i64>,
        #[serde(default = "synthetic::default_classes")]
        classes: i64,
        #[serde(default = "synthetic::default_train")]
        train: usize,
        #[serde(default = "synthetic::default_test")]
        test: usize,
        /// Distance scale between class means in units of the noise standard deviation.
        #[serde(default = "synthetic::default_separation")]
        separation: f64,
        #[serde(default)]
        seed: u64,
    },
}

impl From<SpecRepr> for DatasetSpec {
    fn from(r: SpecRepr) -> Self {
        match r {
            SpecRepr::FashionMnist {} => Self::FashionMnist,
            SpecRepr::Mnist {} => Self::Mnist,
            SpecRepr::Adult {} => Self::Adult,
            SpecRepr::FashionMnistMini {} => Self::FashionMnistMini,
            SpecRepr::AdultMini {} => Self::AdultMini,
            SpecRepr::Csv { path, label_column, separator, positive_label, test_fraction, seed } => {
                Self::Csv { path, label_column, separator, positive_label, test_fraction, seed }
            }
            SpecRepr::Cifar10 { dir } => Self::Cifar10 { dir },
            SpecRepr::Synthetic { shape, classes, train, test, separation, seed } => {
                Self::Synthetic { shape, classes, train, test, separation, seed }
            }
        }
    }
}

impl DatasetSpec {
    /// A short name: the CLI name for named datasets, `csv:<path>`, `cifar10:<dir>`, `synthetic-…`.
    pub fn name(&self) -> String {
        match self {
            Self::FashionMnist => "fashion-mnist".into(),
            Self::Mnist => "mnist".into(),
            Self::Adult => "adult".into(),
            Self::FashionMnistMini => "fashion-mnist-mini".into(),
            Self::AdultMini => "adult-mini".into(),
            Self::Csv { path, .. } => format!("csv:{}", path.display()),
            Self::Cifar10 { dir } => format!("cifar10:{}", dir.display()),
            Self::Synthetic { shape, .. } if shape.len() == 1 => "synthetic-tabular".into(),
            Self::Synthetic { .. } => "synthetic-images".into(),
        }
    }

    /// The synthetic image spec behind the name `synthetic-images`: `[1,28,28]`, 10 classes.
    pub fn synthetic_images() -> Self {
        Self::Synthetic {
            shape: vec![1, 28, 28],
            classes: synthetic::default_classes(),
            train: synthetic::default_train(),
            test: synthetic::default_test(),
            separation: synthetic::default_separation(),
            seed: 0,
        }
    }

    /// The synthetic tabular spec behind the name `synthetic-tabular`: 16 features, 2 classes.
    pub fn synthetic_tabular() -> Self {
        Self::Synthetic {
            shape: vec![16],
            classes: 2,
            train: synthetic::default_train(),
            test: synthetic::default_test(),
            separation: synthetic::default_separation(),
            seed: 0,
        }
    }

    /// Whether the examples are images (`[C,H,W]`) rather than tabular rows.
    pub fn is_image(&self) -> bool {
        match self {
            Self::FashionMnist | Self::Mnist | Self::FashionMnistMini | Self::Cifar10 { .. } => true,
            Self::Adult | Self::AdultMini | Self::Csv { .. } => false,
            Self::Synthetic { shape, .. } => shape.len() == 3,
        }
    }
}

/// The names `FromStr` accepts, for help texts.
pub const SPEC_NAMES: &str = "fashion-mnist, mnist, adult, fashion-mnist-mini, adult-mini, \
     synthetic-images, synthetic-tabular, csv:PATH[,label=COL][,sep=C][,positive=VALUE][,test_fraction=F][,seed=S], cifar10:DIR";

impl FromStr for DatasetSpec {
    type Err = DataError;
    /// CLI names. `csv:PATH` gets the CSV defaults ([`csv_defaults`]); the CLI's flags then
    /// override its fields.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s {
            "fashion-mnist" => Self::FashionMnist,
            "mnist" => Self::Mnist,
            "adult" => Self::Adult,
            "fashion-mnist-mini" => Self::FashionMnistMini,
            "adult-mini" => Self::AdultMini,
            "synthetic-images" => Self::synthetic_images(),
            "synthetic-tabular" => Self::synthetic_tabular(),
            _ => {
                if let Some(p) = s.strip_prefix("csv:").filter(|p| !p.is_empty()) {
                    parse_csv_spec(p)?
                } else if let Some(d) = s.strip_prefix("cifar10:").filter(|d| !d.is_empty()) {
                    Self::Cifar10 { dir: PathBuf::from(d) }
                } else {
                    return Err(DataError::Spec(format!(
                        "unknown dataset `{s}`; expected one of: {SPEC_NAMES}"
                    )));
                }
            }
        })
    }
}

/// `csv:PATH[,label=COL][,sep=C][,positive=VALUE][,test_fraction=F][,seed=S]` — the string form
/// of [`DatasetSpec::Csv`] used by `--dataset` and sweep specs; unset options take
/// [`csv_defaults`]. Example (UCI Bank Marketing): `csv:bank-full.csv,label=y,sep=;,positive=yes`.
fn parse_csv_spec(text: &str) -> Result<DatasetSpec> {
    let mut parts = text.split(',');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err(DataError::Spec(format!("`csv:{text}`: the path is empty")));
    }
    let (mut label_column, mut separator, mut positive_label) =
        (csv_defaults::label_column(), csv_defaults::SEPARATOR, None);
    let (mut test_fraction, mut seed) = (csv_defaults::TEST_FRACTION, csv_defaults::SEED);
    for opt in parts {
        let bad = |why: &str| DataError::Spec(format!("`csv:{text}`: option `{opt}` {why}"));
        let (k, v) = opt.split_once('=').ok_or_else(|| bad("is not key=value"))?;
        match k.trim() {
            "label" => label_column = v.to_string(),
            "sep" => {
                let mut c = v.chars();
                separator = match (c.next(), c.next()) {
                    (Some(ch), None) => ch,
                    _ => return Err(bad("must be a single character")),
                };
            }
            "positive" => positive_label = Some(v.to_string()),
            "test_fraction" => test_fraction = v.parse().map_err(|_| bad("is not a number"))?,
            "seed" => seed = v.parse().map_err(|_| bad("is not a non-negative integer"))?,
            _ => return Err(bad("is unknown (expected label, sep, positive, test_fraction, seed)")),
        }
    }
    Ok(DatasetSpec::Csv {
        path: PathBuf::from(path),
        label_column,
        separator,
        positive_label,
        test_fraction,
        seed,
    })
}

/// Load `spec` with verification as set by the environment ([`LoadOptions::from_env`]).
pub fn load(spec: &DatasetSpec, dir: &DataDir, limits: &Limits) -> Result<Split> {
    load_with(spec, dir, limits, &LoadOptions::from_env())
}

/// Load `spec`: read (fetched data from `dir`, fixtures from [`fixtures_dir`], user files from
/// their paths), verify pinned files, parse, encode, then keep the first `limits` examples.
pub fn load_with(spec: &DatasetSpec, dir: &DataDir, limits: &Limits, opts: &LoadOptions) -> Result<Split> {
    let split = match spec {
        DatasetSpec::FashionMnist => idx::load_mnist_like(
            Fetchable::FashionMnist.key(),
            &fetched_dir(dir, Fetchable::FashionMnist)?,
            opts.verify,
        )?,
        DatasetSpec::Mnist => {
            idx::load_mnist_like(Fetchable::Mnist.key(), &fetched_dir(dir, Fetchable::Mnist)?, opts.verify)?
        }
        DatasetSpec::Adult => {
            tabular::load_adult("adult", &fetched_dir(dir, Fetchable::Adult)?, opts.verify)?
        }
        DatasetSpec::FashionMnistMini => {
            idx::load_mnist_like("fashion-mnist-mini", &fixture_dir("fashion-mnist-mini")?, opts.verify)?
        }
        DatasetSpec::AdultMini => {
            tabular::load_adult("adult-mini", &fixture_dir("adult-mini")?, opts.verify)?
        }
        DatasetSpec::Csv { path, label_column, separator, positive_label, test_fraction, seed } => {
            tabular::load_csv(&tabular::CsvOptions {
                path: path.clone(),
                label_column: label_column.clone(),
                separator: *separator,
                positive_label: positive_label.clone(),
                test_fraction: *test_fraction,
                seed: *seed,
            })?
        }
        DatasetSpec::Cifar10 { dir } => cifar::load_cifar10(dir)?,
        DatasetSpec::Synthetic { shape, classes, train, test, separation, seed } => {
            synthetic::gaussian_mixture(&synthetic::MixtureSpec {
                shape: shape.clone(),
                classes: *classes,
                train: *train,
                test: *test,
                separation: *separation,
                seed: *seed,
            })?
        }
    };
    Ok(apply_limits(split, limits))
}

/// Keep the first `limits.train` / `limits.test` examples.
pub fn apply_limits(split: Split, limits: &Limits) -> Split {
    let train = match limits.train {
        Some(n) => split.train.take_first(n),
        None => split.train,
    };
    let test = match limits.test {
        Some(n) => split.test.take_first(n),
        None => split.test,
    };
    Split { train, test, ..split }
}

/// `<data dir>/<name>/`, or a [`DataError::NotFetched`] when it does not exist.
fn fetched_dir(dir: &DataDir, which: Fetchable) -> Result<PathBuf> {
    let d = dir.0.join(which.key());
    if d.is_dir() {
        Ok(d)
    } else {
        Err(DataError::NotFetched {
            name: which.key().to_string(),
            dir: dir.0.clone(),
            what: format!("{} does not exist", d.display()),
        })
    }
}

fn fixture_dir(name: &str) -> Result<PathBuf> {
    let d = fixtures_dir().join(name);
    if d.is_dir() {
        Ok(d)
    } else {
        Err(DataError::Spec(format!(
            "fixture `{name}` not found at {} (set {FIXTURES_ENV} to the datasets/fixtures folder)",
            d.display()
        )))
    }
}

/// Labels `u8`/`u32`… → `i64` tensor `[N]`.
pub(crate) fn labels_tensor(labels: &[i64]) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(labels)?)
}

/// `u8` pixels (`N·C·H·W`, row-major) → `f32` `[N,C,H,W]` in `[0,1]`.
pub(crate) fn images_tensor(pixels: &[u8], shape: [i64; 4]) -> Result<Tensor> {
    let t = Tensor::f_from_slice(pixels)?.f_view(shape)?;
    Ok(t.f_to_kind(tch::Kind::Float)?.f_div_scalar(255.0)?)
}

/// Row-major `f32` `[N, D]`.
pub(crate) fn table_tensor(values: &[f32], n: usize, d: usize) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(values)?.f_view([n as i64, d as i64])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_parse_and_round_trip() {
        for name in [
            "fashion-mnist",
            "mnist",
            "adult",
            "fashion-mnist-mini",
            "adult-mini",
            "synthetic-images",
            "synthetic-tabular",
        ] {
            let s: DatasetSpec = name.parse().unwrap();
            assert_eq!(s.name(), name);
        }
        let c: DatasetSpec = "csv:/tmp/bank-full.csv".parse().unwrap();
        assert_eq!(c.name(), "csv:/tmp/bank-full.csv");
        assert!(matches!(c, DatasetSpec::Csv { separator: ',', .. }));
        let d: DatasetSpec = "cifar10:/data/cifar".parse().unwrap();
        assert_eq!(d, DatasetSpec::Cifar10 { dir: "/data/cifar".into() });
        let e = "imagenet".parse::<DatasetSpec>().unwrap_err().to_string();
        assert!(e.contains("imagenet") && e.contains("fashion-mnist"), "{e}");
        assert!("csv:".parse::<DatasetSpec>().is_err());
    }

    #[test]
    fn spec_serde_toml_and_json() {
        let s: DatasetSpec = toml::from_str(
            "kind = \"csv\"\npath = \"bank-full.csv\"\nlabel-column = \"y\"\nseparator = \";\"\npositive-label = \"yes\"\n",
        )
        .unwrap();
        assert_eq!(
            s,
            DatasetSpec::Csv {
                path: "bank-full.csv".into(),
                label_column: "y".into(),
                separator: ';',
                positive_label: Some("yes".into()),
                test_fraction: csv_defaults::TEST_FRACTION,
                seed: 0
            }
        );
        let j = serde_json::to_string(&DatasetSpec::FashionMnist).unwrap();
        assert_eq!(j, r#"{"kind":"fashion-mnist"}"#);
        let back: DatasetSpec =
            serde_json::from_str(&serde_json::to_string(&DatasetSpec::synthetic_images()).unwrap()).unwrap();
        assert_eq!(back, DatasetSpec::synthetic_images());
        let syn: DatasetSpec = toml::from_str("kind = \"synthetic\"\nshape = [8]\n").unwrap();
        assert!(matches!(syn, DatasetSpec::Synthetic { classes: 10, train: 1000, .. }));
        // Unknown fields are rejected, naming the field.
        let err = toml::from_str::<DatasetSpec>("kind = \"csv\"\npath = \"a.csv\"\nlabel_col = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("label_col"), "{err}");
        assert!(toml::from_str::<DatasetSpec>("kind = \"mnist\"\nextra = 1\n").is_err());
    }

    #[test]
    fn data_dir_default_is_relative_to_cwd() {
        // Only checks the shape of the default; the env var may be set by the user running tests.
        if std::env::var_os(DATA_ENV).is_none() {
            let d = DataDir::from_env();
            assert!(d.0.is_absolute());
            assert!(d.0.ends_with(DEFAULT_DATA_DIR));
        }
    }

    #[test]
    fn missing_fetched_dataset_says_how_to_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let err =
            load(&DatasetSpec::Mnist, &DataDir::new(tmp.path()), &Limits::NONE).unwrap_err().to_string();
        assert!(err.contains("crowdout data fetch mnist"), "{err}");
    }
}
