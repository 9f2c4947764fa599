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
        return Err(CollectiveError::TargetOutOfRange {
            index: 0,
            target: spec.target,
            num_classes: data.num_classes,
        });
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
        Strategy::FeatureLabel | Strategy::FeatureOnly => {
            triggered.iter().map(|&p| p == spec.target).collect()
        }
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
    let count = |f: &dyn Fn(usize) -> bool, set: &mut dyn Iterator<Item = usize>| {
        set.filter(|&i| f(i)).count() as u64
    };
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
pub fn success(
    predict: &dyn Fn(&Tensor) -> Tensor,
    test: &Dataset,
    spec: &CollectiveSpec,
) -> Result<SuccessReport, CollectiveError> {
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
    let mean_success = if per.is_empty() {
        f64::NAN
    } else {
        per.iter().map(|r| r.non_target.rate).sum::<f64>() / per.len() as f64
    };
    Ok(MultiSuccessReport { per_collective: per, mean_success, all_succeed })
}

/// The points of `data` within `threshold` of their triggered version: a boolean mask `[N]`, by
/// max |x − g(x)| (`use_l2` false) or ‖x − g(x)‖₂ (`use_l2` true), computed in chunks.
fn within_mask(
    data: &Dataset,
    trigger: &Trigger,
    threshold: f64,
    use_l2: bool,
) -> Result<Tensor, CollectiveError> {
    if threshold.is_nan() || threshold < 0.0 {
        return Err(CollectiveError::BadValue {
            key: "xi tolerance".into(),
            value: threshold.to_string(),
            reason: "must be >= 0".into(),
        });
    }
    trigger.validate(&data.example_shape())?;
    let n = data.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let (linf, l2) = trigger.displacement(&data.x.f_narrow(0, start, len)?)?;
        parts.push(if use_l2 { l2 } else { linf }.f_le(threshold)?);
        start += len;
    }
    Ok(if parts.is_empty() {
        Tensor::zeros([0], (Kind::Bool, tch::Device::Cpu))
    } else {
        Tensor::f_cat(&parts, 0)?
    })
}

fn fraction_within(
    train: &Dataset,
    trigger: &Trigger,
    threshold: f64,
    use_l2: bool,
) -> Result<f64, CollectiveError> {
    let n = train.len();
    if n == 0 {
        return Err(CollectiveError::BadData("empty training set: xi is undefined".into()));
    }
    let hits = within_mask(train, trigger, threshold, use_l2)?.f_sum(Kind::Int64)?.int64_value(&[]);
    Ok(hits as f64 / n as f64)
}

/// The clean points within Euclidean distance `tau` of the signal set (‖x − g(x)‖₂ ≤ τ, as in
/// [`xi_relaxed`]): a boolean mask `[N]`. For set-to-value triggers only (see [`xi_estimate`]).
pub fn on_signal_set(data: &Dataset, trigger: &Trigger, tau: f64) -> Result<Tensor, CollectiveError> {
    within_mask(data, trigger, tau, true)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Binomial tail P(Bin(n, p) >= k), summed directly (independent of the Beta quantile).
    fn upper_tail(k: u64, n: u64, p: f64) -> f64 {
        let mut total = 0.0;
        for j in k..=n {
            let mut log_c = 0.0;
            for i in 0..j {
                log_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
            }
            total += (log_c + j as f64 * p.ln() + (n - j) as f64 * (1.0 - p).ln()).exp();
        }
        total
    }

    #[test]
    fn clopper_pearson_known_values_and_edges() {
        let (lo, hi) = clopper_pearson(0, 10, 0.95);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.3084971).abs() < 1e-7, "{hi}");
        let (lo, hi) = clopper_pearson(5, 10, 0.95);
        assert!((lo - 0.187086).abs() < 1e-6 && (hi - 0.812914).abs() < 1e-6, "{lo} {hi}");
        let (lo, hi) = clopper_pearson(10, 10, 0.95);
        assert_eq!(hi, 1.0);
        assert!((lo - 0.6915029).abs() < 1e-7);
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
        // Closed forms at the edges: hi(0, n) = 1 − (a/2)^(1/n), lo(n, n) = (a/2)^(1/n).
        for n in [1u64, 3, 17, 250, 10_000] {
            let c = 0.025f64.powf(1.0 / n as f64);
            assert!((clopper_pearson(0, n, 0.95).1 - (1.0 - c)).abs() < 1e-9);
            assert!((clopper_pearson(n, n, 0.95).0 - c).abs() < 1e-9);
        }
        // Defining equations: P(Bin(n, lo) >= k) = a/2 and P(Bin(n, hi) <= k) = a/2.
        for (k, n) in [(1u64, 20u64), (3, 20), (17, 50), (40, 41), (123, 400)] {
            let (lo, hi) = clopper_pearson(k, n, 0.95);
            assert!((upper_tail(k, n, lo) - 0.025).abs() < 1e-8, "lo for {k}/{n}");
            assert!((1.0 - upper_tail(k + 1, n, hi) - 0.025).abs() < 1e-8, "hi for {k}/{n}");
            let p = k as f64 / n as f64;
            assert!(lo < p && p < hi);
        }
        let r = Rate::new(5, 10);
        assert_eq!((r.successes, r.n, r.rate), (5, 10, 0.5));
    }

    /// 40 images [1, 4, 4]: pixel values in (0, 1) except that images 0..6 already have a 1 at
    /// the bottom-right pixel; labels i % 4.
    fn test_set() -> Dataset {
        let n = 40;
        let mut v: Vec<f32> = (0..n * 16).map(|i| ((i * 37 + 11) % 97) as f32 / 100.0 + 0.01).collect();
        for i in 0..6 {
            v[(i * 16 + 15) as usize] = 1.0;
        }
        let y: Vec<i64> = (0..n).map(|i| i % 4).collect();
        Dataset { x: Tensor::from_slice(&v).reshape([n, 1, 4, 4]), y: Tensor::from_slice(&y), num_classes: 4 }
    }

    fn spec(s: &str) -> CollectiveSpec {
        s.parse().unwrap()
    }

    #[test]
    fn triggered_test_excludes_target_points() {
        let test = test_set();
        let s = spec("alpha=0.1,target=2,trigger=patch:size=1:pos=br:value=1");
        let (x, y) = triggered_test(&test, &s).unwrap();
        let y = Vec::<i64>::try_from(&y).unwrap();
        assert_eq!(y.len(), 30);
        assert!(y.iter().all(|&l| l != 2));
        assert_eq!(x.size(), vec![30, 1, 4, 4]);
        assert!(Vec::<f32>::try_from(&x.select(2, 3).select(2, 3).reshape([-1]))
            .unwrap()
            .iter()
            .all(|&v| v == 1.0));
    }

    /// A model that answers `target` when the bottom-right pixel is exactly 1, else 0.
    fn patch_detector(target: i64) -> impl Fn(&Tensor) -> Tensor {
        move |x: &Tensor| {
            let hit = x.select(1, 0).select(1, 3).select(1, 3).eq(1.0);
            hit.to_kind(Kind::Int64) * target
        }
    }

    #[test]
    fn success_counts_match_a_hand_count() {
        let test = test_set();
        // Model: predicts 3 on a patch, 0 otherwise. Triggered points are all predicted 3.
        let s = spec("alpha=0.1,target=3,trigger=patch:size=1:pos=br:value=1");
        let r = success(&patch_detector(3), &test, &s).unwrap();
        assert_eq!((r.non_target.successes, r.non_target.n), (30, 30));
        assert_eq!((r.all.successes, r.all.n), (40, 40));
        // Clean: label-0 points without a patch (10 minus i = 0, 4) and label-3 points with one
        // (i = 3) are right: 8 + 1.
        assert_eq!((r.clean_accuracy.successes, r.clean_accuracy.n), (9, 40));
        assert!(r.erase_true_label.is_none());
        // A constant model gives no success: the no-collective baseline is computed the same way.
        let constant = |x: &Tensor| Tensor::zeros([x.size()[0]], (Kind::Int64, tch::Device::Cpu));
        let r0 = success(&constant, &test, &s).unwrap();
        assert_eq!(r0.non_target.successes, 0);
        assert_eq!(r0.non_target.hi, clopper_pearson(0, 30, 0.95).1);
        // Erasing: the constant model ignores the trigger (S_erase = 1); the detector does not.
        let e = spec("alpha=0.1,target=3,trigger=patch:size=1:pos=br:value=1,strategy=erasing");
        let r = success(&constant, &test, &e).unwrap();
        assert_eq!((r.non_target.successes, r.non_target.n), (30, 30));
        assert_eq!(r.erase_true_label.unwrap().successes, 10, "label-0 points among the 30");
        let r = success(&patch_detector(3), &test, &e).unwrap();
        // Prediction unchanged only where the clean image already had the patch (i < 6, label ≠ 3).
        assert_eq!(r.non_target.successes, 5);
        // Wrong-shaped predictions are an error, not a panic.
        let bad = |x: &Tensor| Tensor::zeros([x.size()[0] + 1], (Kind::Int64, tch::Device::Cpu));
        assert!(matches!(success(&bad, &test, &s), Err(CollectiveError::BadPredictions { .. })));
    }

    #[test]
    fn several_collectives_global_success() {
        let test = test_set();
        let a = spec("alpha=0.1,target=3,trigger=patch:size=1:pos=br:value=1");
        let b = spec("alpha=0.1,target=2,trigger=patch:size=1:pos=tl:value=1");
        // Detector of the br patch only: a succeeds everywhere, b nowhere.
        let m = success_many(&patch_detector(3), &test, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.per_collective[0].non_target.rate, 1.0);
        assert_eq!(m.per_collective[1].non_target.rate, 0.0);
        assert_eq!(m.mean_success, 0.5);
        let all = m.all_succeed.unwrap();
        assert_eq!((all.successes, all.n), (0, 20), "points with label not in {{2, 3}}");
        let m = success_many(&patch_detector(3), &test, &[a]).unwrap();
        assert_eq!(m.all_succeed.unwrap().rate, 1.0);
    }

    #[test]
    fn xi_counts_points_already_carrying_the_signal() {
        let test = test_set();
        let t = Trigger::Patch { size: 1, row: -1, col: -1, value: 1.0 };
        assert_eq!(xi_estimate(&test, &t, 0.0).unwrap(), 6.0 / 40.0);
        // Relaxed: every pixel is at most 0.98 below 1, so τ = 1 covers all points.
        assert_eq!(xi_relaxed(&test, &t, 1.0).unwrap(), 1.0);
        // Count independently the points whose br pixel is within 0.3 of 1.
        let v = Vec::<f32>::try_from(&test.x.reshape([-1])).unwrap();
        let expected = (0..40).filter(|i| (1.0 - v[i * 16 + 15] as f64) <= 0.3).count() as f64 / 40.0;
        assert_eq!(xi_relaxed(&test, &t, 0.3).unwrap(), expected);
        assert!(expected > 6.0 / 40.0);
        let off = Trigger::FeatureOffset { feature: 0, shift_std: 1.0 };
        assert!(xi_estimate(&test, &off, 0.0).is_err(), "offset does not fit images");
        let tokens = Dataset {
            x: Tensor::from_slice(&[5i64, 1, 2, 5, 5, 5]).reshape([3, 2]),
            y: Tensor::from_slice(&[0i64, 1, 0]),
            num_classes: 2,
        };
        assert_eq!(xi_estimate(&tokens, &Trigger::Token { position: 0, token: 5 }, 0.0).unwrap(), 2.0 / 3.0);
        assert!(matches!(xi_estimate(&test, &t, -1.0), Err(CollectiveError::BadValue { .. })));
    }
}
