//! Success metrics with exact (Clopper–Pearson) intervals, the triggered test set, and the ξ
//! (signal-uniqueness) estimates the bounds module consumes.
//!
//! Definitions, for a collective with trigger g and target y*, model f, test set {(xᵢ, yᵢ)}:
//! - **S** (feature-label, feature-only; Hardt et al. 2023, S(α) = Pr_{x∼P₀}[f(g(x)) = y*]
//!   restricted to points not already of class y*):
//!   S = #{i : yᵢ ≠ y*, f(g(xᵢ)) = y*} / #{i : yᵢ ≠ y*};
//! - **S over all points**: #{i : f(g(xᵢ)) = y*} / N (counts y*-points that stay y*);
//! - **S_erase** (erasing): #{i : yᵢ ≠ y*, f(g(xᵢ)) = f(xᵢ)} / #{i : yᵢ ≠ y*}, the fraction of
//!   triggered points whose prediction the trigger does not change; its "all points" version
//!   drops the yᵢ ≠ y* condition, and `erase_true_label` reports #{yᵢ ≠ y*, f(g(xᵢ)) = yᵢ}/#{yᵢ ≠ y*};
//! - **clean accuracy**: #{i : f(xᵢ) = yᵢ} / N.
//!
//! The no-collective baseline is the same function applied to a model trained without the
//! collective (the caller does that).

use serde::Serialize;
use statrs::distribution::{Beta, ContinuousCDF};
use tch::{Kind, Tensor};

use super::error::CollectiveError;
use super::plant::labels;
use super::spec::CollectiveSpec;
use super::strategy::Strategy;
use super::trigger::Trigger;
use crate::data::Dataset;

/// Confidence level of every reported interval.
pub const CONFIDENCE: f64 = 0.95;

/// Rows per chunk when scanning a data set (bounds memory for large image sets).
const CHUNK: i64 = 4096;

/// A binomial proportion with its Clopper–Pearson interval.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Number of successes k.
    pub successes: u64,
    /// Number of trials n.
    pub n: u64,
    /// k / n (NaN when n = 0).
    pub rate: f64,
    /// Lower end of the [`CONFIDENCE`] Clopper–Pearson interval.
    pub lo: f64,
    /// Upper end of the [`CONFIDENCE`] Clopper–Pearson interval.
    pub hi: f64,
}

impl Rate {
    /// k out of n with a [`CONFIDENCE`] interval.
    pub fn new(successes: u64, n: u64) -> Self {
        let (lo, hi) = clopper_pearson(successes, n, CONFIDENCE);
        let rate = if n == 0 { f64::NAN } else { successes as f64 / n as f64 };
        Rate { successes, n, rate, lo, hi }
    }
}

/// The exact (Clopper–Pearson 1934) two-sided interval for a binomial proportion with k
/// successes in n trials at level `confidence` = 1 − a:
/// lo = B⁻¹(a/2; k, n − k + 1), hi = B⁻¹(1 − a/2; k + 1, n − k), with B⁻¹ the Beta quantile,
/// and the exact edge cases lo = 0 when k = 0, hi = 1 when k = n. n = 0 gives (0, 1); k > n is
/// treated as k = n; a `confidence` outside (0, 1) gives (0, 1).
pub fn clopper_pearson(k: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 || !(confidence > 0.0 && confidence < 1.0) {
        return (0.0, 1.0);
    }
    let k = k.min(n);
    let a = 1.0 - confidence;
    let quantile = |p: f64, shape_a: f64, shape_b: f64| -> f64 {
        match Beta::new(shape_a, shape_b) {
            Ok(b) => b.inverse_cdf(p),
            Err(_) => f64::NAN, // unreachable: both shapes are >= 1 here
        }
    };
    let lo = if k == 0 { 0.0 } else { quantile(a / 2.0, k as f64, (n - k + 1) as f64) };
    let hi = if k == n { 1.0 } else { quantile(1.0 - a / 2.0, (k + 1) as f64, (n - k) as f64) };
    (lo, hi)
}

/// The triggered test set of a collective: g(x) for every test point whose true label ≠ target,
/// and those points' true labels.
pub fn triggered_test(test: &Dataset, spec: &CollectiveSpec) -> Result<(Tensor, Tensor), CollectiveError> {
    let y = labels(test)?;
    check_target(test, spec)?;
    spec.trigger.validate(&test.example_shape())?;
    let keep: Vec<i64> = (0..y.len() as i64).filter(|&i| y[i as usize] != spec.target).collect();
    let idx = Tensor::from_slice(&keep);
    let x = spec.trigger.apply(&test.x.f_index_select(0, &idx)?)?;
    let labels: Vec<i64> = keep.iter().map(|&i| y[i as usize]).collect();
    Ok((x, Tensor::from_slice(&labels)))
}

fn check_target(data: &Dataset, spec: &CollectiveSpec) -> Result<(), CollectiveError> {
    if spec.target < 0 || spec.target >= data.num_classes {
        return Err(CollectiveError::TargetOutOfRange { index: 0, target: spec.target, num_classes: data.num_classes });
    }
    Ok(())
}

/// A collective's success on one model.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SuccessReport {
    /// Target label y*.
    pub target: i64,
    /// The strategy (decides what counts as success).
    pub strategy: Strategy,
    /// S over test points whose true label ≠ y* (S_erase for erasing).
    pub non_target: Rate,
    /// The same over all test points.
    pub all: Rate,
    /// Clean test accuracy f(x) = y over all test points.
    pub clean_accuracy: Rate,
    /// Erasing only: fraction of non-target triggered points classified as their true label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erase_true_label: Option<Rate>,
}

/// Several collectives' success on one model.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MultiSuccessReport {
    /// One report per collective, in order.
    pub per_collective: Vec<SuccessReport>,
    /// Global success: the mean of the per-collective `non_target.rate`.
    pub mean_success: f64,
    /// Fraction of test points whose true label differs from every target on which every
    /// collective succeeds (each with its own trigger applied alone). `None` if no test point
    /// qualifies.
    pub all_succeed: Option<Rate>,
}

fn predictions(predict: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> Result<Vec<i64>, CollectiveError> {
    let n = x.size()[0];
    let p = predict(x);
    let size = p.size();
    if size != [n] {
        return Err(CollectiveError::BadPredictions { expected: n, got: format!("shape {size:?}") });
    }
    Ok(Vec::<i64>::try_from(&p.f_to_kind(Kind::Int64)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?)?)
}

/// Per-point success indicator of one collective given clean predictions.
fn outcomes(
    predict: &dyn Fn(&Tensor) -> Tensor,
    test: &Dataset,
    spec: &CollectiveSpec,
    clean: &[i64],
) -> Result<Vec<bool>, CollectiveError> {
    let triggered = predictions(predict, &spec.trigger.apply(&test.x)?)?;
    Ok(match spec.strategy {
        Strategy::FeatureLabel | Strategy::FeatureOnly => triggered.iter().map(|&p| p == spec.target).collect(),
        Strategy::Erasing => triggered.iter().zip(clean).map(|(p, c)| p == c).collect(),
    })
}

fn report(
    predict: &dyn Fn(&Tensor) -> Tensor,
    test: &Dataset,
    spec: &CollectiveSpec,
    y: &[i64],
    clean: &[i64],
) -> Result<(SuccessReport, Vec<bool>), CollectiveError> {
    check_target(test, spec)?;
    let ok = outcomes(predict, test, spec, clean)?;
    let non_target: Vec<usize> = (0..y.len()).filter(|&i| y[i] != spec.target).collect();
    if non_target.is_empty() {
        return Err(CollectiveError::NoNonTargetTestPoints { target: spec.target, n: y.len() as i64 });
    }
    let count = |f: &dyn Fn(usize) -> bool, set: &mut dyn Iterator<Item = usize>| set.filter(|&i| f(i)).count() as u64;
    let nt = non_target.len() as u64;
    let n = y.len() as u64;
    let s_nt = count(&|i| ok[i], &mut non_target.iter().copied());
    let s_all = count(&|i| ok[i], &mut (0..y.len()));
    let acc = count(&|i| clean[i] == y[i], &mut (0..y.len()));
    let erase_true_label = if spec.strategy == Strategy::Erasing {
        let triggered = predictions(predict, &spec.trigger.apply(&test.x)?)?;
        Some(Rate::new(count(&|i| triggered[i] == y[i], &mut non_target.iter().copied()), nt))
    } else {
        None
    };
    Ok((
        SuccessReport {
            target: spec.target,
            strategy: spec.strategy,
            non_target: Rate::new(s_nt, nt),
            all: Rate::new(s_all, n),
            clean_accuracy: Rate::new(acc, n),
            erase_true_label,
        },
        ok,
    ))
}

/// Success of one collective for the classifier `predict` (x → predicted labels, i64 `[n]`) on
/// `test`: S on non-target points, on all points, and clean accuracy, each with a 95%
/// Clopper–Pearson interval. `predict` is called on the whole clean and the whole triggered test
/// set (batch inside it if needed).
pub fn success(predict: &dyn Fn(&Tensor) -> Tensor, test: &Dataset, spec: &CollectiveSpec) -> Result<SuccessReport, CollectiveError> {
    let y = labels(test)?;
    spec.trigger.validate(&test.example_shape())?;
    let clean = predictions(predict, &test.x)?;
    Ok(report(predict, test, spec, &y, &clean)?.0)
}

/// Success of several collectives: per collective (as [`success`]), the mean over collectives,
/// and the fraction of test points (true label ≠ every target) where every collective succeeds.
pub fn success_many(
    predict: &dyn Fn(&Tensor) -> Tensor,
    test: &Dataset,
    specs: &[CollectiveSpec],
) -> Result<MultiSuccessReport, CollectiveError> {
    let y = labels(test)?;
    let clean = predictions(predict, &test.x)?;
    let mut per = Vec::with_capacity(specs.len());
    let mut every = vec![true; y.len()];
    for spec in specs {
        spec.trigger.validate(&test.example_shape())?;
        let (r, ok) = report(predict, test, spec, &y, &clean)?;
        for (e, o) in every.iter_mut().zip(&ok) {
            *e &= *o;
        }
        per.push(r);
    }
    let eligible: Vec<usize> = (0..y.len()).filter(|&i| specs.iter().all(|s| y[i] != s.target)).collect();
    let all_succeed = if eligible.is_empty() || specs.is_empty() {
        None
    } else {
        Some(Rate::new(eligible.iter().filter(|&&i| every[i]).count() as u64, eligible.len() as u64))
    };
    let mean_success = if per.is_empty() { f64::NAN } else { per.iter().map(|r| r.non_target.rate).sum::<f64>() / per.len() as f64 };
    Ok(MultiSuccessReport { per_collective: per, mean_success, all_succeed })
}

fn fraction_within(train: &Dataset, trigger: &Trigger, threshold: f64, use_l2: bool) -> Result<f64, CollectiveError> {
    let n = train.len();
    if n == 0 {
        return Err(CollectiveError::BadData("empty training set: xi is undefined".into()));
    }
    if !(threshold >= 0.0) {
        return Err(CollectiveError::BadValue {
            key: "xi tolerance".into(),
            value: threshold.to_string(),
            reason: "must be >= 0".into(),
        });
    }
    trigger.validate(&train.example_shape())?;
    let mut hits = 0i64;
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let (linf, l2) = trigger.displacement(&train.x.f_narrow(0, start, len)?)?;
        let d = if use_l2 { l2 } else { linf };
        hits += d.f_le(threshold)?.f_sum(Kind::Int64)?.int64_value(&[]);
        start += len;
    }
    Ok(hits as f64 / n as f64)
}

/// Strict estimate of ξ = P₀(g(X)) (Hardt et al. 2023, signal uniqueness): the fraction of clean
/// training points that already carry the signal, i.e. with x = g(x) up to `tolerance` in every
/// entry (max |x − g(x)| ≤ tolerance). For a patch: the patch region already holds the trigger
/// value; for a token: the position already holds the token (ids compare exactly, so any
/// tolerance < 1 means equality).
///
/// Caveat: for the additive triggers (grid, feature offset) x = g(x) only where the clamp
/// saturates (grid) or never (offset, non-zero shift), so this estimate is ~0 for them while
/// the *set* g(supp P₀) can be large; treat a bound that uses it for additive triggers as an
/// assumption (“no clean point looks triggered”), not an estimate.
pub fn xi_estimate(train: &Dataset, trigger: &Trigger, tolerance: f64) -> Result<f64, CollectiveError> {
    fraction_within(train, trigger, tolerance, false)
}

/// Relaxed estimate of ξ: the fraction of clean training points within Euclidean distance `tau`
/// of the signal set, measured as ‖x − g(x)‖₂ (over the whole example). For set-to-value triggers
/// (patch, token) g(x) is the nearest point of the signal set {z : z = g(z)} to x, so this is
/// exactly the distance to that set; for tokens the distance is the number of changed positions
/// (0 or 1). For additive triggers ‖x − g(x)‖ is |shift| (offset) or at most
/// |amplitude|·√(#grid pixels·C), so the estimate jumps from 0 to 1 as `tau` passes it — see the
/// caveat on [`xi_estimate`].
pub fn xi_relaxed(train: &Dataset, trigger: &Trigger, tau: f64) -> Result<f64, CollectiveError> {
    fraction_within(train, trigger, tau, true)
}
