//! Checks the convex DP-SGD bound against a pure-Rust noisy clipped SGD simulation on synthetic
//! softmax data across 20 seeds: the measured success must be at least the bound in all but a
//! number of seeds that is implausible (binomial tail < 1e-3) when the bound's failure
//! probability is β.

use crowdout::bounds::dpsgd::{convex_dpsgd_detail, ConvexDpsgdInputs, ConvexModel, Reference};
use crowdout::bounds::reference::{
    clip_bias_bound, fit_softmax_reference, simulate_dpsgd_softmax, softmax_margins,
    softmax_smoothness_bound, success_rate, x_norms, SimSettings,
};
use crowdout::bounds::BoundKind;
use crowdout::rng::{stream, Stream};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

/// Gaussian blobs (one per class along a circle of radius 1.5) in 2-D, bias appended; a collective
/// of `k` class-0 points planting the trigger x₂ += 4 with target `target`. Triggered test
/// points: fresh points of classes ≠ target with the trigger.
fn data(
    classes: usize,
    n: usize,
    k: usize,
    target: usize,
    seed: u64,
) -> (Vec<Vec<f64>>, Vec<usize>, Vec<Vec<f64>>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let nd = Normal::new(0.0, 0.7).unwrap();
    let centre = |c: usize| {
        let a = 2.0 * std::f64::consts::PI * c as f64 / classes as f64;
        (1.5 * a.cos(), 1.5 * a.sin() * 0.3)
    };
    let point = |c: usize, rng: &mut ChaCha20Rng| {
        let (a, b) = centre(c);
        vec![a + nd.sample(rng), b + nd.sample(rng), 1.0]
    };
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut planted = 0;
    for i in 0..n {
        let c = i % classes;
        let mut x = point(c, &mut rng);
        let mut y = c;
        if c != target && planted < k {
            // a collective member: plant the trigger and relabel to the target
            x[1] += 4.0;
            y = target;
            planted += 1;
        }
        xs.push(x);
        ys.push(y);
    }
    let mut test = Vec::new();
    for i in 0..60 {
        let c = i % classes;
        if c == target {
            continue;
        }
        let mut x = point(c, &mut rng);
        x[1] += 4.0;
        test.push(x);
    }
    (xs, ys, test)
}

struct Case {
    classes: usize,
    q: f64,
    sigma: f64,
    clip: f64,
    lambda: f64,
    steps: u64,
    unclipped_reference: bool,
    n: usize,
    k: usize,
}

/// Returns (bound value, kind, successes over seeds).
fn run(case: &Case, seeds: u64) -> (f64, BoundKind, Vec<f64>) {
    let target = 1;
    let (xs, ys, test) = data(case.classes, case.n, case.k, target, 7);
    let clip = if case.unclipped_reference { None } else { Some(case.clip) };
    let fit = fit_softmax_reference(&xs, &ys, case.classes, case.lambda, clip, 1e-11, 200_000).unwrap();
    let margins = softmax_margins(&fit.theta, case.classes, &test, target);
    let norms = x_norms(&test);
    let smooth = softmax_smoothness_bound(&xs);
    let lr = 1.0 / (smooth + case.lambda);
    let dim = case.classes * 3;
    let theta0 = vec![0.0; dim];
    let reference = if case.unclipped_reference {
        Reference::UnclippedMinimiser { clip_bias: clip_bias_bound(&xs, case.clip) }
    } else {
        Reference::ClippedMinimiser
    };
    let inp = ConvexDpsgdInputs {
        model: ConvexModel::Softmax { classes: case.classes },
        reference,
        theta_hat_margins: &margins,
        x_norms: &norms,
        theta0_dist: fit.theta.iter().map(|t| t * t).sum::<f64>().sqrt(),
        theta_hat_error: fit.error_bound.unwrap(),
        lambda: case.lambda,
        lr,
        steps: case.steps,
        sigma: case.sigma,
        clip: case.clip,
        expected_batch: case.q * xs.len() as f64,
        q: case.q,
        dim,
        beta: 0.05,
        smoothness: smooth,
    };
    let b = convex_dpsgd_detail(&inp).unwrap();
    let s = SimSettings {
        lambda: case.lambda,
        lr,
        steps: case.steps,
        sigma: case.sigma,
        clip: case.clip,
        q: case.q,
    };
    let succ = (0..seeds)
        .map(|seed| {
            let mut samp = stream(Some(seed), Stream::Sampling);
            let mut noise = stream(Some(seed), Stream::Noise);
            let th =
                simulate_dpsgd_softmax(&xs, &ys, case.classes, &s, &theta0, &mut samp, &mut noise).unwrap();
            success_rate(&th, case.classes, &test, target)
        })
        .collect();
    let mut ms: Vec<f64> = margins.iter().zip(&norms).map(|(m, x)| m / (b.margin_constant * x)).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "normalised margins min {:.3} median {:.3} max {:.3}",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    eprintln!(
        "bound {:.3} radius {:?} clean-ref success {:.3}",
        b.bound.value,
        b.radius,
        success_rate(&fit.theta, case.classes, &test, target)
    );
    (b.bound.value, b.bound.kind, succ)
}

/// Largest number of failures out of n that has binomial-tail probability ≥ 1e-3 at rate β.
fn allowed_failures(n: u64, beta: f64) -> u64 {
    let mut tail = 1.0; // P(X >= f)
    let mut pmf: Vec<f64> = Vec::new();
    for f in 0..=n {
        let mut c = 1.0;
        for i in 0..f {
            c *= (n - i) as f64 / (i + 1) as f64;
        }
        pmf.push(c * beta.powi(f as i32) * (1.0 - beta).powi((n - f) as i32));
    }
    for f in 0..=n {
        if tail < 1e-3 {
            return f - 1;
        }
        tail -= pmf[f as usize];
    }
    n
}

fn check(case: Case, min_bound: f64) {
    let seeds = 20;
    let (bound, kind, succ) = run(&case, seeds);
    assert_eq!(kind, BoundKind::Guarantee);
    assert!(bound >= min_bound, "bound {bound} is too weak to test anything (want >= {min_bound})");
    let failures = succ.iter().filter(|&&s| s < bound).count() as u64;
    eprintln!("successes {succ:?}");
    assert!(
        failures <= allowed_failures(seeds, 0.05),
        "bound {bound} violated in {failures}/{seeds} seeds: {succ:?}"
    );
}

#[test]
fn binary_softmax_full_batch_clipped() {
    check(
        Case {
            classes: 2,
            q: 1.0,
            sigma: 1.0,
            clip: 1.0,
            lambda: 0.1,
            steps: 300,
            unclipped_reference: false,
            n: 1000,
            k: 200,
        },
        0.5,
    );
}

#[test]
fn binary_softmax_poisson_sampled_clipped() {
    check(
        Case {
            classes: 2,
            q: 0.9,
            sigma: 1.0,
            clip: 1.0,
            lambda: 0.1,
            steps: 300,
            unclipped_reference: false,
            n: 1000,
            k: 200,
        },
        0.1,
    );
}

#[test]
fn three_class_unclipped_reference_no_clipping_active() {
    check(
        Case {
            classes: 3,
            q: 1.0,
            sigma: 0.1,
            clip: 10.0,
            lambda: 0.1,
            steps: 300,
            unclipped_reference: true,
            n: 900,
            k: 150,
        },
        0.2,
    );
}

#[test]
fn allowed_failures_is_sane() {
    // n = 20, β = 0.05: P(X ≥ 5) ≈ 2.6e-3, P(X ≥ 6) ≈ 3.3e-4 → at most 5 failures allowed.
    assert_eq!(allowed_failures(20, 0.05), 5);
}
