//! Datasets: loading (IDX, Adult, generic CSV, CIFAR-10 binary, synthetic), fetching with pinned
//! sha256, splits and normalisation.
//!
//! Conventions every other module relies on:
//! - images are `f32` in `[0, 1]`, shape `[N, C, H, W]` (no mean/std normalisation, so triggers
//!   are defined in pixel units);
//! - tabular features are `f32`, shape `[N, D]`, standardised with statistics fitted on train only;
//! - labels are `i64`, shape `[N]`, in `0..num_classes`;
//! - tensors live on the CPU; the trainer moves them to the device.

use tch::Tensor;

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
