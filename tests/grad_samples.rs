//! Per-sample gradients, ghost norms and clipping against the one-example-at-a-time oracle
//! (`GradMode::Naive`: a full backward per example), for every layer type through every model.
//! Tolerance: max |oracle − tested| ≤ 1e-5 · max |oracle| in float32.

use crowdout::dpsgd::engine::{clip_factors, clipped_grad_sum, per_sample_grads, per_sample_sq_norms};
use crowdout::dpsgd::{Clipping, DpSettings, DpSgd, GradMode};
use crowdout::models::{Model, ModelKind, TransformerShape};
use crowdout::params::ParamGuard;
use crowdout::rng::{stream, Stream};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

fn normal(shape: &[i64], seed: u64) -> Tensor {
    let mut r = stream(Some(seed), Stream::Data);
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            z as f32
        })
        .collect();
    Tensor::from_slice(&v).reshape(shape)
}

fn labels(n: i64, k: i64, seed: u64) -> Tensor {
    let mut r = stream(Some(seed), Stream::Collective);
    let v: Vec<i64> = (0..n).map(|_| r.random_range(0..k)).collect();
    Tensor::from_slice(&v)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn assert_close(what: &str, want: &Tensor, got: &Tensor, rel: f64) {
    assert_eq!(want.size(), got.size(), "{what}: shapes");
    let scale = max_abs(want).max(1e-12);
    let diff = max_abs(&(want - got));
    assert!(diff <= rel * scale, "{what}: max diff {diff:e} > {rel:e} × {scale:e}");
}

/// All checks for one model on one batch.
fn check_model(name: &str, model: &Model, x: &Tensor, y: &Tensor) {
    let tol = 1e-5;
    let naive = per_sample_grads(model, x, y, GradMode::Naive);
    let mat = per_sample_grads(model, x, y, GradMode::Materialize);
    assert_eq!(naive.len(), model.parameters().len());
    let gmax = naive.iter().map(max_abs).fold(0.0, f64::max);
    for (k, (a, b)) in naive.iter().zip(&mat).enumerate() {
        let diff = max_abs(&(a - b));
        assert!(diff <= tol * gmax, "{name}: param {k} per-sample grad diff {diff:e} > {tol:e}·{gmax:e}");
    }
    // Norms: ghost formula (forced on every layer) and materialised vs naive.
    let sq_naive = per_sample_sq_norms(model, x, y, GradMode::Naive);
    let nmax = sq_naive.iter().map(|s| max_abs(&s.sqrt())).fold(0.0, f64::max);
    for mode in [GradMode::Ghost, GradMode::Materialize] {
        let sq = per_sample_sq_norms(model, x, y, mode);
        for (l, (a, b)) in sq_naive.iter().zip(&sq).enumerate() {
            let diff = max_abs(&(a.sqrt() - b.sqrt()));
            assert!(
                diff <= tol * nmax,
                "{name}: {mode:?} layer {l} ({}) norm diff {diff:e}",
                model.layers[l].name()
            );
        }
    }
    // Clipping: every clipped per-sample gradient has norm ≤ C(1 + 1e-6), for both clipping kinds,
    // and the clipped sums of all three modes agree with Σ c_i ∇_i from the oracle.
    let ranges = model.layer_param_ranges();
    let n = x.size()[0];
    let total_norm = sq_naive.iter().fold(Tensor::zeros([n], (Kind::Float, x.device())), |a, s| a + s).sqrt();
    let median = total_norm.median().double_value(&[]);
    for clipping in [Clipping::Flat, Clipping::PerLayer] {
        let c = median; // about half the examples get clipped
        let f = clip_factors(&sq_naive, c, clipping);
        let mut clipped_sq = Tensor::zeros([n], (Kind::Float, x.device()));
        for (r, fl) in ranges.iter().zip(&f) {
            for g in &naive[r.clone()] {
                let cg = g * fl.view(
                    [-1i64]
                        .iter()
                        .chain(std::iter::repeat_n(&1i64, g.dim() - 1))
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice(),
                );
                clipped_sq += cg.reshape([n, -1]).square().sum_dim_intlist(1, false, Kind::Float);
            }
        }
        let worst = clipped_sq.sqrt().max().double_value(&[]);
        assert!(worst <= c * (1.0 + 1e-6), "{name}: {clipping:?} clipped norm {worst} > C = {c}");
        let want: Vec<Tensor> = ranges
            .iter()
            .zip(&f)
            .flat_map(|(r, fl)| {
                naive[r.clone()]
                    .iter()
                    .map(|g| crowdout::models::layer::weighted_sum(g, fl))
                    .collect::<Vec<_>>()
            })
            .collect();
        for mode in [GradMode::Naive, GradMode::Materialize, GradMode::Ghost] {
            let cb = clipped_grad_sum(model, x, y, c, clipping, mode);
            for (k, (a, b)) in want.iter().zip(&cb.sums).enumerate() {
                assert_close(&format!("{name}: {clipping:?} {mode:?} clipped sum of param {k}"), a, b, 1e-5);
            }
        }
    }
    // Same noise draw: ghost and materialize give the same privatised gradient.
    let mut upd = Vec::new();
    for mode in [GradMode::Materialize, GradMode::Ghost] {
        let s = DpSettings {
            noise_multiplier: 0.5,
            max_grad_norm: median,
            clipping: Clipping::Flat,
            grad_mode: mode,
            max_physical_batch: Some(2),
        };
        let mut d = DpSgd::new(model, s.check().unwrap(), n as f64, Some(11)).unwrap();
        d.privatise(model, x, y);
        upd.push(d.grads().iter().map(|g| g.copy()).collect::<Vec<_>>());
    }
    for (k, (a, b)) in upd[0].iter().zip(&upd[1]).enumerate() {
        assert_close(&format!("{name}: ghost vs materialize update, param {k}"), a, b, 1e-5);
    }
}

// Each model on the CPU and, where there is one, on CUDA (`<test>::cuda`, an honest skip
// elsewhere): the same oracle comparisons on the device.
crowdout::test_device!(
    fn softmax_regression(device) {
        let m = Model::new(&ModelKind::Softmax, &[13], 4, Some(1), device).unwrap();
        check_model("softmax", &m, &normal(&[6, 13], 2).to(device), &labels(6, 4, 3).to(device));
    }
);

crowdout::test_device!(
    fn mlp_two_hidden_layers(device) {
        let m = Model::mlp(&[2, 5], &[16, 8], 3, Some(4), device).unwrap();
        check_model("mlp", &m, &normal(&[5, 2, 5], 5).to(device), &labels(5, 3, 6).to(device));
    }
);

crowdout::test_device!(
    fn dp_mnist_cnn(device) {
        let m = Model::new(&ModelKind::Cnn, &[1, 28, 28], 10, Some(7), device).unwrap();
        assert_eq!(m.num_params(), 26010);
        check_model("cnn", &m, &normal(&[4, 1, 28, 28], 8).to(device), &labels(4, 10, 9).to(device));
    }
);

crowdout::test_device!(
    fn resnet18_groupnorm(device) {
        tch::set_num_threads(2);
        let m = Model::new(&ModelKind::Resnet18Gn, &[1, 28, 28], 10, Some(10), device).unwrap();
        // torchvision resnet18 (11 689 512 parameters; GroupNorm has BatchNorm's parameter count)
        // with a 10-class head and a 1-channel 3×3 stem in place of the 3-channel 7×7 one.
        assert_eq!(m.num_params(), 11_689_512 - 513_000 + 5_130 - 9_408 + 576);
        let x = normal(&[3, 1, 28, 28], 11).to(device);
        check_model("resnet18-gn", &m, &x, &labels(3, 10, 12).to(device));
    }
);

crowdout::test_device!(
    fn embedding_layernorm_model(device) {
        let m = Model::embedding(&[7], 12, 8, 3, Some(13), device).unwrap();
        let mut r = stream(Some(14), Stream::Data);
        // Repeated tokens within a sequence exercise the ghost norm's equality mask.
        let ids: Vec<f32> = (0..5 * 7).map(|_| r.random_range(0..12) as f32).collect();
        let x = Tensor::from_slice(&ids).reshape([5, 7]).to(device);
        check_model("embedding", &m, &x, &labels(5, 3, 15).to(device));
    }
);

#[test]
fn model_rejects_shapes_it_cannot_take() {
    assert!(Model::new(&ModelKind::Cnn, &[104], 2, Some(1), Device::Cpu).is_err());
    assert!(Model::new(&ModelKind::Cnn, &[1, 8, 8], 2, Some(1), Device::Cpu).is_err());
    assert!(Model::new(&ModelKind::Resnet18Gn, &[10], 2, Some(1), Device::Cpu).is_err());
    assert!(Model::new(&ModelKind::Embedding, &[1, 28, 28], 2, Some(1), Device::Cpu).is_err());
    assert!(Model::new(&ModelKind::Transformer, &[1, 28, 28], 2, Some(1), Device::Cpu).is_err());
    let odd = TransformerShape { vocab: 10, dim: 10, heads: 3, layers: 1, ff: 8 };
    let e = Model::transformer(&[8], &odd, 2, Some(1), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("dim = 10") && e.contains("heads = 3"), "{e}");
    assert!(Model::new(&ModelKind::Softmax, &[0], 2, Some(1), Device::Cpu).is_err());
    assert!(Model::new(&ModelKind::Softmax, &[4], 1, Some(1), Device::Cpu).is_err());
    let e = Model::new(&ModelKind::Cnn, &[104], 2, Some(1), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("Cnn") && e.contains("104"), "{e}");
}

#[test]
fn init_is_deterministic_per_seed() {
    let a = Model::new(&ModelKind::Mlp, &[20], 3, Some(5), Device::Cpu).unwrap();
    let b = Model::new(&ModelKind::Mlp, &[20], 3, Some(5), Device::Cpu).unwrap();
    let c = Model::new(&ModelKind::Mlp, &[20], 3, Some(6), Device::Cpu).unwrap();
    for ((p, q), r) in a.parameters().iter().zip(b.parameters()).zip(c.parameters()) {
        assert!(p.equal(&q));
        assert!(!p.equal(&r));
        // Kaiming-uniform bound 1/√fan_in.
        let fan_in = if p.dim() == 2 { p.size()[1] } else { 20 };
        let _ = fan_in;
    }
    let w = &a.parameters()[0];
    assert!(max_abs(w) <= 1.0 / 20f64.sqrt() + 1e-7);
}

crowdout::test_device!(
    fn transformer_encoder(device) {
        // 2 blocks, 2 heads, d = 8, T = 6, vocab 11. Sequences of different lengths: padding
        // (id 0) at the end of some rows exercises the attention mask and the masked mean; repeated
        // ids exercise the embedding's ghost norm.
        let shape = TransformerShape { vocab: 11, dim: 8, heads: 2, layers: 2, ff: 12 };
        let m = Model::transformer(&[6], &shape, 3, Some(16), device).unwrap();
        let per_block = 2 * 8 + (8 * 24 + 24) + (8 * 8 + 8) + 2 * 8 + (8 * 12 + 12) + (12 * 8 + 8);
        assert_eq!(m.num_params(), 11 * 8 + 6 * 8 + 2 * per_block + 2 * 8 + (8 * 3 + 3));
        let mut r = stream(Some(17), Stream::Data);
        let lens = [6, 4, 1, 6, 3];
        let ids: Vec<f32> = lens
            .iter()
            .flat_map(|&l| (0..6).map(move |t| (t, l)))
            .map(|(t, l)| if t < l { r.random_range(1..11) as f32 } else { 0.0 })
            .collect();
        let x = Tensor::from_slice(&ids).reshape([5, 6]).to(device);
        check_model("transformer", &m, &x, &labels(5, 3, 18).to(device));
        // Int64 ids (what the text loaders give) produce the same logits as float ids.
        let xi = x.to_kind(Kind::Int64);
        assert!(m.logits(&x).allclose(&m.logits(&xi), 0.0, 0.0, false));
    }
);

#[test]
fn transformer_ghost_norms_at_a_realistic_length() {
    // At T = 32 and d = 16 the projections' ghost route (T × T Gram matrices) differs from the
    // materialised one: both are checked against the one-at-a-time oracle.
    let shape = TransformerShape { vocab: 50, dim: 16, heads: 4, layers: 1, ff: 32 };
    let m = Model::transformer(&[32], &shape, 2, Some(19), Device::Cpu).unwrap();
    let mut r = stream(Some(20), Stream::Data);
    let ids: Vec<i64> =
        (0..3 * 32).map(|i| if i % 32 < 20 + (i / 32) * 5 { r.random_range(1..50) } else { 0 }).collect();
    let x = Tensor::from_slice(&ids).reshape([3, 32]);
    check_model("transformer T=32", &m, &x, &labels(3, 2, 21));
}
