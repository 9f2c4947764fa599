//! Statistical checks of the private randomness (fixed seeds, no timing) and a quick training
//! sanity check on synthetic data.

use crowdout::data::Dataset;
use crowdout::dpsgd::{DpSettings, DpSgd, GradMode, NoiseSource, OptimizerKind, PoissonSampler};
use crowdout::models::{Model, ModelKind};
use crowdout::params::ParamGuard;
use crowdout::rng::{stream, Stream};
use crowdout::train::fit::{dp_steps, fit, FitConfig, FitError};
use rand_distr::{Distribution, StandardNormal};
use statrs::distribution::{ContinuousCDF, Normal};
use tch::{Device, Kind, Tensor};

#[test]
fn poisson_batch_sizes_have_binomial_mean_and_variance() {
    let (n, q, steps) = (2000usize, 0.03, 20_000usize);
    let mut s = PoissonSampler::new(n, q, Some(21)).unwrap();
    let sizes: Vec<f64> = (0..steps).map(|_| s.sample().len() as f64).collect();
    let k = steps as f64;
    let mean = sizes.iter().sum::<f64>() / k;
    let var = sizes.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let (m0, v0) = (q * n as f64, q * n as f64 * (1.0 - q));
    let se_mean = (v0 / k).sqrt();
    // Var of the sample variance ≈ (μ4 − v0²)/k; for a binomial μ4 = v0(1 + 3(n−2)pq)... use the
    // normal approximation 2v0²/k plus the excess-kurtosis term v0(1−6pq)/k.
    let se_var = ((2.0 * v0 * v0 + v0 * (1.0 - 6.0 * q * (1.0 - q))) / k).sqrt();
    assert!((mean - m0).abs() < 4.0 * se_mean, "mean {mean} vs {m0} (se {se_mean})");
    assert!((var - v0).abs() < 4.0 * se_var, "variance {var} vs {v0} (se {se_var})");
    // Each record is included at rate q (marginals), checked on record 0 and the last record.
    let mut s = PoissonSampler::new(50, 0.2, Some(22)).unwrap();
    let (mut first, mut last) = (0.0, 0.0);
    let t: f64 = 20_000.0;
    for _ in 0..20_000 {
        let b = s.sample();
        first += (b.first() == Some(&0)) as u8 as f64;
        last += (b.last() == Some(&49)) as u8 as f64;
    }
    let se = (0.2 * 0.8 / t).sqrt();
    assert!((first / t - 0.2).abs() < 4.0 * se && (last / t - 0.2).abs() < 4.0 * se, "{first} {last}");
}

#[test]
fn noise_is_gaussian_with_std_sigma_c() {
    let (sigma, c) = (1.3, 0.7);
    let sd = sigma * c;
    let n = 200_000usize;
    let mut buf = vec![0f32; n];
    NoiseSource::new(Some(31)).fill(&mut buf, sd);
    let x: Vec<f64> = buf.iter().map(|v| *v as f64).collect();
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    assert!(mean.abs() < 4.0 * sd / (n as f64).sqrt(), "mean {mean}");
    let se_sd = sd / (2.0 * n as f64).sqrt();
    assert!((var.sqrt() - sd).abs() < 4.0 * se_sd, "sd {} vs {sd}", var.sqrt());
    // Kolmogorov–Smirnov against N(0, σ²C²); the α = 0.001 critical value is 1.949/√n.
    let mut sorted = x.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let norm = Normal::new(0.0, sd).unwrap();
    let nf = n as f64;
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let f = norm.cdf(*v);
            (f - i as f64 / nf).abs().max(((i + 1) as f64 / nf - f).abs())
        })
        .fold(0.0, f64::max);
    assert!(d < 1.949 / nf.sqrt(), "KS statistic {d}");
}

// With a zero gradient (an empty Poisson batch), the privatised gradient is exactly the noise
// σC·ξ/L: draw t's coordinate i equals ((z_i·σC) as f32)·((1/L) as f32) in f32 arithmetic, z_i the
// seeded standard normals recomputed the plain way (`NoiseSource::reference_normals`), bit for
// bit. So a wrong σ, C, L or draw number fails, however small the error; on CUDA this also runs
// the copy of the CPU-drawn noise to the device.
crowdout::test_device!(
    fn privatised_zero_gradient_is_exactly_sigma_c_over_l_times_the_seeded_normals(device) {
        let m = Model::new(&ModelKind::Softmax, &[300], 10, Some(1), device).unwrap();
        let (sigma, c, l) = (2.0, 1.5, 40.0);
        let s = DpSettings { noise_multiplier: sigma, max_grad_norm: c, ..DpSettings::default() };
        let mut d = DpSgd::new(&m, s.check().unwrap(), l, Some(2)).unwrap();
        let reference = crowdout::dpsgd::NoiseSource::new(Some(2));
        let inv_l = (1.0 / l) as f32;
        for draw in 0..2u64 {
            let st = d.privatise(
                &m,
                &Tensor::zeros([0, 300], (Kind::Float, device)),
                &Tensor::zeros([0], (Kind::Int64, device)),
            );
            assert_eq!(st.n, 0);
            let all = Tensor::cat(&d.grads().iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0);
            assert_eq!(all.device(), device);
            let got = Vec::<f32>::try_from(all.to_device(Device::Cpu)).unwrap();
            assert_eq!(got.len(), 3010);
            let want: Vec<f32> = reference
                .reference_normals(draw, got.len())
                .iter()
                .map(|z| ((z * sigma * c) as f32) * inv_l)
                .collect();
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits()) {
                panic!("draw {draw}: coordinate {i} is {:e}, σC/L·z is {:e}", got[i], want[i]);
            }
        }
    }
);

fn synthetic(n: i64, d: i64, seed: u64) -> Dataset {
    let mut r = stream(Some(seed), Stream::Data);
    let x: Vec<f32> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            z as f32
        })
        .collect();
    let x = Tensor::from_slice(&x).reshape([n, d]);
    let w = Tensor::from_slice(&(0..d).map(|i| if i % 2 == 0 { 1.0f32 } else { -0.5 }).collect::<Vec<_>>());
    let y = x.matmul(&w).gt(0.0).to_kind(Kind::Int64);
    Dataset { x, y, num_classes: 2 }
}

// DP-SGD steps (ghost and materialised clipping, SGD and Adam) on the CPU and on CUDA where present.
crowdout::test_device!(
fn training_reduces_loss_with_and_without_dp(device) {
    let data = synthetic(1024, 12, 41);
    for (dp, opt) in [
        (None, OptimizerKind::Sgd),
        (
            Some(DpSettings {
                noise_multiplier: 0.8,
                max_grad_norm: 1.0,
                grad_mode: GradMode::Ghost,
                max_physical_batch: Some(50),
                ..DpSettings::default()
            }),
            OptimizerKind::Sgd,
        ),
        (
            Some(DpSettings {
                noise_multiplier: 0.8,
                max_grad_norm: 1.0,
                grad_mode: GradMode::Materialize,
                ..DpSettings::default()
            }),
            OptimizerKind::Adam,
        ),
    ] {
        let mut m = Model::mlp(&[12], &[16], 2, Some(42), device).unwrap();
        let (xd, yd) = (data.x.to(device), data.y.to(device));
        let x0 = m.logits(&xd);
        let loss0 = Model::per_example_loss(&x0, &yd).mean(Kind::Float).double_value(&[]);
        let lr = if opt == OptimizerKind::Adam { 0.02 } else { 0.5 };
        let cfg = FitConfig {
            epochs: 4.0,
            batch_size: 128,
            lr,
            optimizer: opt,
            momentum: 0.0,
            weight_decay: 1e-4,
            dp: dp.clone(),
            ..FitConfig::default()
        };
        let mut seen = 0;
        let out = fit(&mut m, &data, &cfg.check().unwrap(), Some(43), device, &mut |_| seen += 1).unwrap();
        let loss1 = Model::per_example_loss(&m.logits(&xd), &yd).mean(Kind::Float).double_value(&[]);
        assert_eq!(seen as u64, out.steps);
        if dp.is_some() {
            assert_eq!(out.steps, dp_steps(4.0, 0.125));
            assert_eq!(out.steps, 32);
            assert!((out.mean_batch_size - 128.0).abs() < 15.0, "{}", out.mean_batch_size);
        } else {
            assert_eq!(out.steps, 32);
        }
        assert!(loss1 < 0.6 * loss0, "{dp:?} {opt:?}: loss {loss0} → {loss1}");
    }
}
);

#[test]
fn fit_is_reproducible_and_validates() {
    let data = synthetic(200, 5, 51);
    let cfg =
        FitConfig { epochs: 1.0, batch_size: 20, dp: Some(DpSettings::default()), ..FitConfig::default() };
    let run = || {
        let mut m = Model::new(&ModelKind::Softmax, &[5], 2, Some(1), Device::Cpu).unwrap();
        fit(&mut m, &data, &cfg.check_ref().unwrap(), Some(2), Device::Cpu, &mut |_| {}).unwrap();
        m.parameters()[0].copy()
    };
    assert!(run().equal(&run()));
    for (bad, field) in [
        (FitConfig { lr: 0.0, ..cfg.clone() }, "lr"),
        (FitConfig { batch_size: 0, ..cfg.clone() }, "batch_size"),
        (FitConfig { epochs: -1.0, ..cfg.clone() }, "epochs"),
        (
            FitConfig {
                dp: Some(DpSettings { noise_multiplier: -1.0, ..DpSettings::default() }),
                ..cfg.clone()
            },
            "noise_multiplier",
        ),
        (
            FitConfig { dp: Some(DpSettings { max_grad_norm: 0.0, ..DpSettings::default() }), ..cfg.clone() },
            "max_grad_norm",
        ),
    ] {
        // Refused where the settings are checked, naming the field; `fit` takes only checked ones.
        let e = bad.check().unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    let wrong = Model::new(&ModelKind::Softmax, &[6], 2, Some(1), Device::Cpu).unwrap();
    let mut wrong = wrong;
    assert!(matches!(
        fit(&mut wrong, &data, &cfg.check_ref().unwrap(), Some(1), Device::Cpu, &mut |_| {}),
        Err(FitError::ShapeMismatch { .. })
    ));
    // TOML round trip with unknown fields rejected.
    let s = toml::to_string(&cfg).unwrap();
    assert_eq!(toml::from_str::<FitConfig>(&s).unwrap(), cfg);
    assert!(toml::from_str::<FitConfig>(&format!("{s}\nbogus = 1\n")).is_err());
}
