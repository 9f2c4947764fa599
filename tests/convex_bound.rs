//! The convex DP-SGD lower bound (`bounds::dpsgd`, docs/bounds.md §2) against the REAL trainer
//! (`train::fit::fit` on a `ModelKind::Softmax` model with flat clipping, Poisson sampling,
//! Gaussian noise, plain SGD with weight decay), across 20 training seeds.
//!
//! Why the guarantee applies to this trainer (checked in `src/train/fit.rs`, `src/dpsgd/step.rs`,
//! `src/dpsgd/optim.rs`, `src/dpsgd/engine.rs`, `src/models/linear.rs`):
//! - the softmax model is one `Linear` layer, logits `W x + b`; with x̃ = (x, 1) that is Θx̃ with
//!   Θ = [W | b] ∈ R^{2×(d+1)}, so the bias is part of Θ;
//! - flat clipping uses the joint norm of the weight and bias per-sample gradients,
//!   `‖g‖²(‖x‖² + 1) = ‖p − e_y‖²‖x̃‖²` — the bound's clip_C(∇ℓ(Θ; x̃, y));
//! - noise N(0, σ²C²) is added to every coordinate of the clipped sum (bias included) and the sum
//!   is divided by the expected batch L = qN (not the realised batch size);
//! - `Optimizer::step` with SGD, μ = 0 adds λθ to the privatised gradient of *every* parameter
//!   (bias included), outside the clip, then θ ← θ − η(g̃ + λθ): exactly the bound's update;
//! - Poisson sampling at q = L/N with constant η, T = round(epochs/q) steps, last iterate kept.
//!
//! The reference Θ̂_C is fitted in f64 on the very f32 features the trainer sees (after planting),
//! with 1 appended; Θ₀ is read from each seed's model before training. The trainer runs in f32,
//! which the bound does not cover (its slack is far larger than the rounding).

use crowdout::bounds::dpsgd::{
    convex_dpsgd_bound, convex_dpsgd_detail, ConvexDpsgdInputs, ConvexModel, Reference,
};
use crowdout::bounds::moment::{clipped_grad_sq_sum, moment_bound, MomentInputs};
use crowdout::bounds::reference::{
    fit_softmax_reference, softmax_margins, softmax_smoothness_bound, success_rate, x_norms,
};
use crowdout::bounds::BoundKind;
use crowdout::collective::{plant, triggered_test, CollectiveSpec, Strategy, Trigger};
use crowdout::data::Dataset;
use crowdout::dpsgd::{Clipping, DpSettings, GradMode, OptimizerKind};
use crowdout::models::{Model, ModelKind};
use crowdout::params::ParamGuard;
use crowdout::train::fit::{dp_steps, fit, FitConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

/// Features per record (before the bias 1 is appended).
const D: usize = 4;
/// Test records (half of them class 0, whose triggered copies are the points measured).
const N_TEST: usize = 200;
/// Target label y*.
const TARGET: i64 = 1;
/// Fraction of the training set in the collective.
const ALPHA: f64 = 0.15;
/// Failure probability of the bound.
const BETA: f64 = 0.1;
/// Training seeds.
const SEEDS: u64 = 20;

/// Two Gaussian classes in R^D: class y has mean ±0.6 on features 1..D, feature 0 is pure noise
/// (so the trigger feature carries no class signal in the clean data). Labels alternate.
fn gaussian_classes(n: usize, rng: &mut ChaCha20Rng) -> Dataset {
    let mut xs = Vec::with_capacity(n * D);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let y = (i % 2) as i64;
        let sign = if y == 1 { 1.0 } else { -1.0 };
        for j in 0..D {
            let z: f64 = StandardNormal.sample(rng);
            let mean = if j == 0 { 0.0 } else { 0.6 * sign };
            xs.push((mean + z) as f32);
        }
        ys.push(y);
    }
    Dataset {
        x: Tensor::from_slice(&xs).reshape([n as i64, D as i64]),
        y: Tensor::from_slice(&ys),
        num_classes: 2,
    }
}

/// Rows of a `[n, D]` tensor as f64 with the bias coordinate 1 appended.
fn rows_with_bias(x: &Tensor) -> Vec<Vec<f64>> {
    let n = x.size()[0] as usize;
    let flat: Vec<f32> = Vec::try_from(&x.to_kind(Kind::Float).contiguous().view([-1])).unwrap();
    assert_eq!(flat.len(), n * D);
    flat.chunks(D).map(|r| r.iter().map(|&v| v as f64).chain(std::iter::once(1.0)).collect()).collect()
}

fn labels(y: &Tensor) -> Vec<usize> {
    let v: Vec<i64> = Vec::try_from(&y.to_kind(Kind::Int64).contiguous()).unwrap();
    v.into_iter().map(|l| l as usize).collect()
}

/// Θ = [W | b] of the softmax model, K×(D+1) row-major (the layout of `bounds::reference`).
fn theta_of(model: &Model) -> Vec<f64> {
    let p = model.parameters();
    assert_eq!(p.len(), 2, "softmax model = one linear layer with weight and bias");
    let w: Vec<f32> = Vec::try_from(&p[0].detach().contiguous().view([-1])).unwrap();
    let b: Vec<f32> = Vec::try_from(&p[1].detach().contiguous().view([-1])).unwrap();
    assert_eq!((w.len(), b.len()), (2 * D, 2));
    let mut th = Vec::with_capacity(2 * (D + 1));
    for c in 0..2 {
        th.extend(w[c * D..(c + 1) * D].iter().map(|&v| v as f64));
        th.push(b[c] as f64);
    }
    th
}

/// The fixed world: planted training set and the triggered test points (true label ≠ y*).
struct World {
    train: Dataset,
    train_x: Vec<Vec<f64>>,
    train_y: Vec<usize>,
    trig: Tensor,
    trig_x: Vec<Vec<f64>>,
}

fn world(n: usize) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(20250705);
    let clean = gaussian_classes(n, &mut rng);
    let test = gaussian_classes(N_TEST, &mut rng);
    let spec = CollectiveSpec::new(
        ALPHA,
        TARGET,
        Trigger::FeatureOffset { feature: 0, shift_std: 3.0 },
        Some(Strategy::FeatureLabel),
        None,
        None,
    )
    .unwrap();
    let planted = plant(&clean, std::slice::from_ref(&spec), Some(11)).unwrap();
    assert_eq!(planted.collectives[0].members, (ALPHA * n as f64).floor() as u64);
    let (trig, trig_y) = triggered_test(&test, &spec).unwrap();
    assert!(labels(&trig_y).iter().all(|&y| y as i64 != TARGET));
    let train_x = rows_with_bias(&planted.train.x);
    let train_y = labels(&planted.train.y);
    let trig_x = rows_with_bias(&trig);
    World { train: planted.train, train_x, train_y, trig, trig_x }
}

/// One DP-SGD configuration of the real trainer.
#[derive(Clone, Copy, Debug)]
struct Setting {
    /// Training records N.
    n: usize,
    sigma: f64,
    clip: f64,
    lambda: f64,
    /// Expected batch L (q = L/N).
    batch: usize,
    /// Steps T (epochs = T·q).
    steps: u64,
    /// η as a fraction of the largest step the bound allows, 2/(β_s + 2λ).
    lr_frac: f64,
    mode: GradMode,
}

impl Setting {
    fn q(&self) -> f64 {
        self.batch as f64 / self.n as f64
    }
    fn lr(&self, smooth: f64) -> f64 {
        self.lr_frac * 2.0 / (smooth + 2.0 * self.lambda)
    }
    fn config(&self, smooth: f64) -> FitConfig {
        FitConfig {
            epochs: self.steps as f64 * self.q(),
            batch_size: self.batch,
            lr: self.lr(smooth),
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: self.lambda,
            dp: Some(DpSettings {
                noise_multiplier: self.sigma,
                max_grad_norm: self.clip,
                clipping: Clipping::Flat,
                grad_mode: self.mode,
                max_physical_batch: None,
            }),
            ..FitConfig::default()
        }
    }
}

/// Θ̃_C (the clipped minimiser on the planted training set, f64) and what the bound needs of it.
struct RefPoint {
    theta: Vec<f64>,
    /// e_opt = ‖∇F_C(Θ̃)‖/λ ≥ ‖Θ̃ − Θ̂_C‖.
    error: f64,
    margins: Vec<f64>,
    norms: Vec<f64>,
    /// β_s = mean‖x̃‖²/2 over the training set.
    smooth: f64,
}

fn reference(w: &World, s: &Setting) -> RefPoint {
    let fit =
        fit_softmax_reference(&w.train_x, &w.train_y, 2, s.lambda, Some(s.clip), 1e-10, 200_000).unwrap();
    let error = fit.error_bound.expect("the 2-class clipped minimiser is certified");
    assert!(error < 1e-6, "reference not converged: ‖G‖ = {}", fit.grad_norm);
    let margins = softmax_margins(&fit.theta, 2, &w.trig_x, TARGET as usize);
    RefPoint {
        error,
        margins,
        norms: x_norms(&w.trig_x),
        smooth: softmax_smoothness_bound(&w.train_x),
        theta: fit.theta,
    }
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

fn inputs<'a>(r: &'a RefPoint, s: &Setting, theta0: &[f64]) -> ConvexDpsgdInputs<'a> {
    ConvexDpsgdInputs {
        model: ConvexModel::Softmax { classes: 2 },
        reference: Reference::ClippedMinimiser,
        theta_hat_margins: &r.margins,
        x_norms: &r.norms,
        theta0_dist: dist(theta0, &r.theta),
        theta_hat_error: r.error,
        lambda: s.lambda,
        lr: s.lr(r.smooth),
        steps: s.steps,
        sigma: s.sigma,
        clip: s.clip,
        expected_batch: s.q() * s.n as f64,
        q: s.q(),
        dim: 2 * (D + 1),
        beta: BETA,
        smoothness: r.smooth,
    }
}

/// Fraction of triggered points the model classifies y* (logit of y* strictly largest).
fn measured_success(model: &Model, trig: &Tensor) -> f64 {
    let logits = tch::no_grad(|| model.forward(trig, None));
    let z: Vec<f32> = Vec::try_from(&logits.contiguous().view([-1])).unwrap();
    let n = z.len() / 2;
    let t = TARGET as usize;
    (0..n).filter(|&i| z[2 * i + t] > z[2 * i + 1 - t]).count() as f64 / n as f64
}

/// Largest number of failures out of n whose binomial upper tail P(X ≥ f) at rate β is ≥ 1e-3
/// (so that more failures would reject "the bound holds w.p. ≥ 1 − β" at level 1e-3).
fn allowed_failures(n: u64, beta: f64) -> u64 {
    let pmf = |f: u64| {
        let mut c = 1.0;
        for i in 0..f {
            c *= (n - i) as f64 / (i + 1) as f64;
        }
        c * beta.powi(f as i32) * (1.0 - beta).powi((n - f) as i32)
    };
    let mut tail = 1.0; // P(X ≥ f)
    for f in 0..=n {
        if tail < 1e-3 {
            return f - 1;
        }
        tail -= pmf(f);
    }
    n
}

struct Outcome {
    bounds: Vec<f64>,
    measured: Vec<f64>,
    /// Θ_T of each seed.
    thetas: Vec<Vec<f64>>,
    /// The radius r of each seed.
    radii: Vec<f64>,
}

fn min(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Trains `SEEDS` seeds under `s` on the real trainer, prints (seed, bound, measured) and checks
/// that both the success bound and the radius event it rests on (‖Θ_T − Θ̃‖ ≤ r) fail in no
/// more seeds than Binomial(SEEDS, β) makes plausible at level 1e-3.
fn check_against_trainer(w: &World, r: &RefPoint, s: &Setting, label: &str) -> Outcome {
    let cfg = s.config(r.smooth);
    assert_eq!(dp_steps(cfg.epochs, s.q()), s.steps);
    let mut out = Outcome { bounds: Vec::new(), measured: Vec::new(), thetas: Vec::new(), radii: Vec::new() };
    let (mut fails, mut radius_fails) = (0u64, 0u64);
    eprintln!(
        "--- {label}: {s:?}: q = {:.3}, T = {}, η = {:.4}, λ = {}, reference success {:.3}, e_opt {:.1e}",
        s.q(),
        s.steps,
        cfg.lr,
        s.lambda,
        success_rate(&r.theta, 2, &w.trig_x, TARGET as usize),
        r.error
    );
    eprintln!("seed  ‖Θ₀−Θ̃‖  ‖Θ_T−Θ̃‖   radius   bound  measured");
    for seed in 0..SEEDS {
        let mut model = Model::new(&ModelKind::Softmax, &[D as i64], 2, Some(seed), Device::Cpu).unwrap();
        let theta0 = theta_of(&model);
        let inp = inputs(r, s, &theta0);
        let detail = convex_dpsgd_detail(&inp).unwrap();
        let bound = convex_dpsgd_bound(&inp).unwrap();
        assert_eq!(bound.kind, BoundKind::Guarantee);
        assert_eq!(bound.probability, Some(1.0 - BETA));
        assert_eq!(bound.value, detail.bound.value);
        let fo = fit(&mut model, &w.train, &cfg.check_ref().unwrap(), Some(seed), Device::Cpu, &mut |_| {})
            .unwrap();
        assert_eq!(
            (fo.steps, fo.sample_rate),
            (s.steps, s.q()),
            "the trainer must run the T and q the bound was given"
        );
        let meas = measured_success(&model, &w.trig);
        let theta_t = theta_of(&model);
        // The f32 logits and an f64 evaluation of the trained Θ agree up to a point or two.
        let f64_meas = success_rate(&theta_t, 2, &w.trig_x, TARGET as usize);
        assert!((meas - f64_meas).abs() <= 2.0 / w.trig_x.len() as f64, "logits {meas} vs f64 {f64_meas}");
        let moved = dist(&theta_t, &r.theta);
        let fail = meas < bound.value;
        let rfail = moved > detail.radius.total;
        eprintln!(
            "{seed:>4}  {:>7.3}  {:>8.4}  {:>7.4}  {:>6.3}  {:>8.3}{}{}",
            inp.theta0_dist,
            moved,
            detail.radius.total,
            bound.value,
            meas,
            if fail { "  BOUND FAILS" } else { "" },
            if rfail { "  RADIUS FAILS" } else { "" },
        );
        fails += fail as u64;
        radius_fails += rfail as u64;
        out.bounds.push(bound.value);
        out.measured.push(meas);
        out.thetas.push(theta_t);
        out.radii.push(detail.radius.total);
    }
    eprintln!(
        "{label}: bound min {:.3} mean {:.3}; measured min {:.3} mean {:.3}; bound failures {fails}/{SEEDS}, radius failures {radius_fails}/{SEEDS}",
        min(&out.bounds),
        mean(&out.bounds),
        min(&out.measured),
        mean(&out.measured)
    );
    let allowed = allowed_failures(SEEDS, BETA);
    assert!(
        fails <= allowed,
        "{label}: the bound (holding w.p. ≥ {}) failed in {fails}/{SEEDS} seeds (allowed {allowed}): bounds {:?}, measured {:?}",
        1.0 - BETA,
        out.bounds,
        out.measured
    );
    assert!(
        radius_fails <= allowed,
        "{label}: ‖Θ_T − Θ̃‖ exceeded the radius in {radius_fails}/{SEEDS} seeds (allowed {allowed})"
    );
    out
}

/// Poisson sampling at q = 0.8 (the sampling term dominates the radius), ghost clipping.
#[test]
fn poisson_sampled_dpsgd_meets_the_bound() {
    let s = Setting {
        n: 4000,
        sigma: 1.0,
        clip: 2.0,
        lambda: 2.0,
        batch: 3200,
        steps: 15,
        lr_frac: 0.95,
        mode: GradMode::Ghost,
    };
    let w = world(s.n);
    let r = reference(&w, &s);
    let o = check_against_trainer(&w, &r, &s, "poisson q=0.8");
    assert!(min(&o.bounds) >= 0.4, "bound {} is too weak to test anything", min(&o.bounds));
}

/// Full-batch DP-SGD (q = 1: no sampling error, the noise term dominates), materialised
/// per-sample gradients; then the same world with σ larger: the bound must be lower (and still
/// hold on the trainer).
#[test]
fn full_batch_dpsgd_meets_the_bound_and_more_noise_lowers_it() {
    let s = Setting {
        n: 1000,
        sigma: 1.0,
        clip: 1.0,
        lambda: 0.5,
        batch: 1000,
        steps: 35,
        lr_frac: 0.95,
        mode: GradMode::Materialize,
    };
    let w = world(s.n);
    let r = reference(&w, &s);
    let o = check_against_trainer(&w, &r, &s, "full batch σ=1");
    assert!(min(&o.bounds) >= 0.5, "bound {} is too weak to test anything", min(&o.bounds));

    // The radius check has teeth: had the trainer applied weight decay 0.8λ (or not clipped at
    // all), its iterates would sit farther than r from the Θ̃ we computed.
    for (what, other) in [
        (
            "0.8λ",
            fit_softmax_reference(&w.train_x, &w.train_y, 2, 0.8 * s.lambda, Some(s.clip), 1e-10, 200_000)
                .unwrap()
                .theta,
        ),
        (
            "no clipping",
            fit_softmax_reference(&w.train_x, &w.train_y, 2, s.lambda, None, 1e-10, 200_000).unwrap().theta,
        ),
    ] {
        let gap = dist(&other, &r.theta);
        eprintln!("‖Θ̃({what}) − Θ̃‖ = {gap:.4} vs r = {:.4}", o.radii[0]);
        for (t, rad) in o.thetas.iter().zip(&o.radii) {
            assert!(dist(t, &other) > *rad, "a trainer with {what} would also pass the radius check");
        }
    }

    // Monotone in σ on this real setting (same Θ̃, same Θ₀ as seed 0).
    let theta0 = theta_of(&Model::new(&ModelKind::Softmax, &[D as i64], 2, Some(0), Device::Cpu).unwrap());
    let sigmas = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
    let by_sigma: Vec<f64> = sigmas
        .iter()
        .map(|&sigma| convex_dpsgd_bound(&inputs(&r, &Setting { sigma, ..s }, &theta0)).unwrap().value)
        .collect();
    eprintln!("bound by σ {sigmas:?}: {by_sigma:?}");
    assert!(by_sigma.windows(2).all(|p| p[1] <= p[0]), "bound not non-increasing in σ: {by_sigma:?}");
    let loud = Setting { sigma: 8.0, ..s };
    let o8 = check_against_trainer(&w, &r, &loud, "full batch σ=8");
    assert!(
        mean(&o8.bounds) < mean(&o.bounds),
        "σ = 8 bound {} not below σ = 1 bound {}",
        mean(&o8.bounds),
        mean(&o.bounds)
    );
    assert!(min(&o8.bounds) > 0.0, "σ = 8 bound is vacuous; pick a σ where it still says something");
}

/// The second-moment guarantee (docs/bounds.md §2.9) against the real trainer at a small sampling
/// rate (q = 0.05, where §2.6's radius is vacuous): over 20 seeds, (i) the means of ‖Θ_T − Θ̃‖² and
/// ‖Θ_T − Θ̃‖⁴ stay below V and W (their 95% lower confidence limits must not exceed them), (ii) the bound on E[S] is not above
/// the seeds' mean success plus its 95% confidence half-width, (iii) the per-run bound at 1 − β
/// fails in no more seeds than Binomial(20, β) allows at level 1e-3, and (iv) it says something.
#[test]
fn second_moment_guarantee_holds_on_the_trainer_at_small_q() {
    let s = Setting {
        n: 4000,
        sigma: 1.0,
        clip: 1.0,
        lambda: 0.5,
        batch: 200,
        steps: 600,
        lr_frac: 0.1,
        mode: GradMode::Ghost,
    };
    let w = world(s.n);
    let r = reference(&w, &s);
    let cfg = s.config(r.smooth);
    let train_norms = x_norms(&w.train_x);
    let g2 = clipped_grad_sq_sum(ConvexModel::Softmax { classes: 2 }, train_norms.iter().copied(), s.clip);
    let beta = 0.05;
    let (mut sq, mut meas, mut hp_fails) = (Vec::new(), Vec::new(), 0u64);
    let mut last = None;
    for seed in 0..SEEDS {
        let mut model = Model::new(&ModelKind::Softmax, &[D as i64], 2, Some(seed), Device::Cpu).unwrap();
        let theta0 = theta_of(&model);
        let b = moment_bound(&MomentInputs {
            model: ConvexModel::Softmax { classes: 2 },
            margins: &r.margins,
            x_norms: &r.norms,
            theta0_dist: dist(&theta0, &r.theta),
            theta_hat_error: r.error,
            lambda: s.lambda,
            lr: cfg.lr,
            steps: s.steps,
            sigma: s.sigma,
            clip: s.clip,
            expected_batch: s.q() * s.n as f64,
            q: s.q(),
            dim: 2 * (D + 1),
            clipped_grad_sq_sum: g2,
            smoothness: r.smooth,
            beta,
        })
        .unwrap();
        // §2.6's worst-case radius is vacuous here: the point of the second-moment bound.
        let old = convex_dpsgd_bound(&inputs(&r, &s, &theta0)).unwrap().value;
        let fo = fit(&mut model, &w.train, &cfg.check_ref().unwrap(), Some(seed), Device::Cpu, &mut |_| {})
            .unwrap();
        assert_eq!(fo.steps, s.steps);
        let m = measured_success(&model, &w.trig);
        let d2 = dist(&theta_of(&model), &r.theta).powi(2);
        eprintln!(
            "seed {seed:>2}: ‖Θ_T−Θ̃‖² {d2:.5} (V {:.5}), E-bound {:.3}, hp bound {:.3} (§2.6: {old:.3}), measured {m:.3}",
            b.parts.total, b.mean.value, b.high_prob.value
        );
        hp_fails += (m < b.high_prob.value) as u64;
        sq.push(d2);
        meas.push(m);
        last = Some(b);
    }
    let b = last.unwrap();
    let n = SEEDS as f64;
    let ci = |v: &[f64]| {
        let m = mean(v);
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (m, 2.093 * sd / n.sqrt()) // t_{0.975, 19}
    };
    let (msq, hsq) = ci(&sq);
    let (ms, hs) = ci(&meas);
    eprintln!("mean ‖Θ_T−Θ̃‖² {msq:.5} ± {hsq:.5} vs V {:.5}; mean success {ms:.3} ± {hs:.3} vs E-bound {:.3}; hp failures {hp_fails}/{SEEDS}", b.parts.total, b.mean.value);
    assert!(msq - hsq <= b.parts.total, "E‖Θ_T − Θ̂‖² exceeds V: {msq} ± {hsq} vs {}", b.parts.total);
    let fourth: Vec<f64> = sq.iter().map(|d2| d2 * d2).collect();
    let (m4, h4) = ci(&fourth);
    eprintln!("mean ‖Θ_T−Θ̃‖⁴ {m4:.3e} ± {h4:.1e} vs W {:.3e}", b.parts.fourth);
    assert!(m4 - h4 <= b.parts.fourth, "E‖Θ_T − Θ̂‖⁴ exceeds W: {m4} ± {h4} vs {}", b.parts.fourth);
    assert!(ms + hs >= b.mean.value, "E[S] below its guarantee: {ms} ± {hs} vs {}", b.mean.value);
    assert!(hp_fails <= allowed_failures(SEEDS, beta), "per-run bound failed in {hp_fails}/{SEEDS} seeds");
    assert!(b.mean.value >= 0.4, "E-bound {} too weak to test anything", b.mean.value);
}

#[test]
fn allowed_failures_is_sane() {
    // n = 20, β = 0.1: P(X ≥ 7) ≈ 2.4e-3, P(X ≥ 8) ≈ 4.3e-4 → at most 7 failures allowed.
    assert_eq!(allowed_failures(20, 0.1), 7);
    assert_eq!(allowed_failures(20, 0.05), 5);
}
