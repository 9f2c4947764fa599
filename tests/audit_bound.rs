//! The audited ε lower bound never exceeds the accountant's ε (small model, full-batch DP-SGD),
//! and the audit has power: without noise it does find leakage.
//!
//! The accountant's ε is computed here, independently of `crowdout::accountant` and of the audit
//! module: for q = 1, T steps of the Gaussian mechanism with noise multiplier σ have RDP
//! ε(α) = Tα/(2σ²) (Mironov 2017, Prop. 7), and ε = min_{α>1} ε(α) + ln(1/δ)/(α − 1) is a valid
//! (ε, δ) upper bound; it is minimised here over a fine grid of α.

use crowdout::accountant::{self, Method, Phase};
use crowdout::audit::{self, CanaryLabel, MultiRunConfig, OneRunConfig, ThresholdRule, TrainSpec};
use crowdout::collective::Trigger;
use crowdout::data::{self, DataDir, DatasetSpec, Limits};
use crowdout::dpsgd::DpSettings;
use crowdout::models::ModelKind;
use tch::Device;

const DELTA: f64 = 1e-5;
const STEPS: u64 = 20;

fn rdp_epsilon(sigma: f64, steps: u64, delta: f64) -> f64 {
    (1..20000)
        .map(|i| 1.0 + i as f64 * 0.01)
        .map(|a| steps as f64 * a / (2.0 * sigma * sigma) + (1.0 / delta).ln() / (a - 1.0))
        .fold(f64::INFINITY, f64::min)
}

/// σ with rdp_epsilon(σ) ≈ target (bisection; ε falls as σ grows).
fn sigma_for(target: f64) -> f64 {
    let (mut lo, mut hi) = (0.01f64, 1000.0f64);
    for _ in 0..60 {
        let mid = (lo * hi).sqrt();
        if rdp_epsilon(mid, STEPS, DELTA) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

fn train(sigma: f64) -> TrainSpec {
    TrainSpec {
        model: ModelKind::Softmax,
        steps: STEPS,
        sample_rate: 1.0,
        lr: 1.0,
        dp: DpSettings { noise_multiplier: sigma, max_grad_norm: 1.0, ..DpSettings::default() },
        ..TrainSpec::default()
    }
}

#[test]
fn audited_lower_bound_never_exceeds_accountant_epsilon() {
    tch::set_num_threads(1);
    let s = data::load(
        &DatasetSpec::FashionMnistMini,
        &DataDir::from_env(),
        &Limits { train: Some(100), test: None },
    )
    .unwrap();
    let trig: Trigger = "patch:size=4:pos=br:value=1".parse().unwrap();
    let canary = audit::make_canaries(&s.test, 1, &trig, 0, CanaryLabel::Target, Some(0)).unwrap();
    let canaries = audit::make_canaries(&s.test, 100, &trig, 0, CanaryLabel::Random, Some(0)).unwrap();

    // Power: non-private training must be caught (else a vacuous audit would pass below).
    let cfg = MultiRunConfig {
        runs: 20,
        train: train(0.0),
        delta: DELTA,
        beta: 0.05,
        rule: ThresholdRule::Split,
        seed: Some(1),
    };
    let r = audit::multi_run(&s.train, &canary, &cfg, Device::Cpu, &mut |_, _| {}).unwrap();
    assert!(r.bound.epsilon_lb > 0.5, "σ = 0 should be detected; got {:?}", r.bound);

    for eps in [1.0, 4.0, 8.0] {
        let sigma = sigma_for(eps);
        let acct = rdp_epsilon(sigma, STEPS, DELTA);
        assert!((acct - eps).abs() < 1e-3 * eps + 1e-3);
        for rule in [ThresholdRule::Split, ThresholdRule::Bonferroni] {
            let cfg = MultiRunConfig {
                runs: 20,
                train: train(sigma),
                delta: DELTA,
                beta: 0.05,
                rule,
                seed: Some(2),
            };
            let r = audit::multi_run(&s.train, &canary, &cfg, Device::Cpu, &mut |_, _| {}).unwrap();
            assert!(
                r.bound.epsilon_lb <= acct,
                "ε = {eps} ({rule:?}): audited {} > accountant {acct}",
                r.bound.epsilon_lb
            );
            // the audit module's own exact full-batch ε lies between them
            assert!(r.bound.epsilon_lb <= audit::stats::full_batch_exact_epsilon(sigma, STEPS, DELTA));
        }
        // and below the crate's accountant (PLD, tight for q = 1)
        let pld = accountant::epsilon(Method::Pld, &[Phase { q: 1.0, sigma, steps: STEPS }], DELTA)
            .unwrap()
            .epsilon;
        assert!(pld <= acct + 1e-6, "PLD {pld} above the RDP bound {acct}");
        let cfg = OneRunConfig {
            train: train(sigma),
            guesses: Vec::new(),
            delta: DELTA,
            beta: 0.05,
            seed: Some(3),
        };
        let r = audit::one_run(&s.train, &canaries, &cfg, Device::Cpu, &mut |_, _| {}).unwrap();
        assert!(r.epsilon_lb <= acct, "one-run ε = {eps}: audited {} > accountant {acct}", r.epsilon_lb);
        assert_eq!(r.inclusion.len(), 100);
    }

    // Poisson subsampling (q = 0.5): the accountant's subsampled-Gaussian ε bounds the audit too.
    let sigma = 1.0;
    let eps =
        accountant::epsilon(Method::Pld, &[Phase { q: 0.5, sigma, steps: STEPS }], DELTA).unwrap().epsilon;
    let mut t = train(sigma);
    t.sample_rate = 0.5;
    let cfg = MultiRunConfig {
        runs: 20,
        train: t,
        delta: DELTA,
        beta: 0.05,
        rule: ThresholdRule::Split,
        seed: Some(4),
    };
    let r = audit::multi_run(&s.train, &canary, &cfg, Device::Cpu, &mut |_, _| {}).unwrap();
    assert!(r.bound.epsilon_lb <= eps, "q = 0.5: audited {} > accountant {eps}", r.bound.epsilon_lb);
}
