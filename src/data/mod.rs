//! Datasets: loading (IDX, Adult, generic CSV, CIFAR-10 binary, synthetic, mail text), fetching with pinned
//! sha256, splits and normalisation.
//!
//! Conventions every other module relies on:
//! - images are `f32` in `[0, 1]`, shape `[N, C, H, W]` (no mean/std normalisation, so triggers
//!   are defined in pixel units);
//! - tabular features are `f32`, shape `[N, D]`, standardised with statistics fitted on train only;
//! - text is `i64` token ids, shape `[N, T]`, from the [`tokenizer::Vocab`] in [`Split::vocab`];
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

use std::path::PathBuf;

use tch::Tensor;

pub mod checksums;
pub mod cifar;
mod dir;
mod fetch;
pub mod files;
pub mod idx;
mod load;
pub mod relabel;
mod spec;
pub mod synthetic;
pub mod tabular;
pub mod text;
pub mod tokenizer;

pub use dir::{
    fixtures_dir, DataDir, LoadOptions, DATA_ENV, DEFAULT_DATA_DIR, FIXTURES_ENV, SKIP_VERIFY_ENV,
};
pub use fetch::{fetch, verify, Fetchable, FIXTURES};
pub use load::{apply_limits, load, load_with, Limits};
pub use spec::{csv_defaults, DatasetSpec, SPEC_NAMES};

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
    /// Text: the vocabulary fitted on the training part (x holds its token ids); `None` otherwise.
    pub vocab: Option<tokenizer::Vocab>,
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
