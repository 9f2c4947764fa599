//! Synthetic Gaussian mixtures for tests and quick experiments.
//!
//! Class `k` has a mean `μ_k = (s/√P)·z_k` with `z_k ~ N(0, I_P)` (P = features per example,
//! `s` = `separation`), and an example of class k is `g = μ_k + ε`, `ε ~ N(0, I_P)`. So
//! `‖μ_a − μ_b‖ ≈ s·√2` noise standard deviations whatever P is: the two-class Bayes error is
//! about `Φ(−s/√2)` (≈ 1.7% at the default s = 3).
//! - Image shape `[C,H,W]`: pixels `clamp(0.5 + 0.15·g, 0, 1)`.
//! - Tabular shape `[D]`: `g` standardised with train statistics (names `x0…`, `feature_std` the
//!   pre-standardisation train std), as for real tabular data.
//!
//! Labels cycle `0, 1, …, K−1, 0, …`, so every prefix is balanced. All draws come from
//! `rng::stream(seed, Stream::Data)`: train first, then test.

use rand::RngExt;
use rand_distr::StandardNormal;

use super::tabular::{Cell, Encoder};
use super::{labels_tensor, table_tensor, DataError, Dataset, Result, Split};
use crate::rng::{stream, Stream};

pub(crate) fn default_classes() -> i64 {
    10
}
pub(crate) fn default_train() -> usize {
    1000
}
pub(crate) fn default_test() -> usize {
    200
}
pub(crate) fn default_separation() -> f64 {
    3.0
}

/// Parameters of a mixture (the fields of `DatasetSpec::Synthetic`).
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureSpec {
    pub shape: Vec<i64>,
    pub classes: i64,
    pub train: usize,
    pub test: usize,
    pub separation: f64,
    pub seed: u64,
}

/// Generate the mixture described by `m`.
pub fn gaussian_mixture(m: &MixtureSpec) -> Result<Split> {
    let bad = |what: String| DataError::Spec(format!("synthetic dataset: {what}"));
    if !(m.shape.len() == 1 || m.shape.len() == 3) || m.shape.iter().any(|&d| d <= 0) {
        return Err(bad(format!(
            "shape {:?} must be [D] (tabular) or [C, H, W] (images) with positive sizes",
            m.shape
        )));
    }
    if m.classes < 2 {
        return Err(bad(format!("classes = {} must be at least 2", m.classes)));
    }
    if m.train == 0 || m.test == 0 {
        return Err(bad(format!("train = {} and test = {} must both be positive", m.train, m.test)));
    }
    if !(m.separation.is_finite() && m.separation >= 0.0) {
        return Err(bad(format!("separation = {} must be finite and non-negative", m.separation)));
    }
    let p: usize = m.shape.iter().map(|&d| d as usize).product();
    let k = m.classes as usize;
    let mut rng = stream(Some(m.seed), Stream::Data);
    let scale = m.separation / (p as f64).sqrt();
    let means: Vec<f64> = (0..k * p).map(|_| scale * rng.sample::<f64, _>(StandardNormal)).collect();
    let mut draw = |n: usize| -> (Vec<f64>, Vec<i64>) {
        let mut g = Vec::with_capacity(n * p);
        let labels: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
        for &l in &labels {
            let mu = &means[l as usize * p..(l as usize + 1) * p];
            g.extend(mu.iter().map(|m| m + rng.sample::<f64, _>(StandardNormal)));
        }
        (g, labels)
    };
    let (gtr, ytr) = draw(m.train);
    let (gte, yte) = draw(m.test);
    let classes = m.classes;
    if m.shape.len() == 3 {
        let to_img = |g: &[f64], labels: &[i64]| -> Result<Dataset> {
            let n = labels.len();
            let v: Vec<f32> = g.iter().map(|x| (0.5 + 0.15 * x).clamp(0.0, 1.0) as f32).collect();
            let x = table_tensor(&v, n, p)?.f_view([n as i64, m.shape[0], m.shape[1], m.shape[2]])?;
            Ok(Dataset { x, y: labels_tensor(labels)?, num_classes: classes })
        };
        return Ok(Split {
            name: "synthetic-images".into(),
            train: to_img(&gtr, &ytr)?,
            test: to_img(&gte, &yte)?,
            feature_names: vec![],
            feature_std: vec![],
            vocab: None,
        });
    }
    let names: Vec<String> = (0..p).map(|j| format!("x{j}")).collect();
    let rows = |g: &[f64]| -> Vec<Vec<Cell>> {
        g.chunks_exact(p).map(|r| r.iter().map(|&v| Cell::Num(v)).collect()).collect()
    };
    let (rtr, rte) = (rows(&gtr), rows(&gte));
    let enc = Encoder::fit(&names, &vec![true; p], &rtr);
    Ok(Split {
        name: "synthetic-tabular".into(),
        train: Dataset {
            x: table_tensor(&enc.transform(&rtr), m.train, p)?,
            y: labels_tensor(&ytr)?,
            num_classes: classes,
        },
        test: Dataset {
            x: table_tensor(&enc.transform(&rte), m.test, p)?,
            y: labels_tensor(&yte)?,
            num_classes: classes,
        },
        feature_names: enc.feature_names(),
        feature_std: enc.feature_std(),
        vocab: None,
    })
}
