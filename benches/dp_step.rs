//! DP-SGD step speed (criterion, float32, CPU, 2 libtorch threads).
//!
//! Workloads: W1 MLP 784→256→10 batch 256; W2 DP MNIST CNN batch 256; W3 ResNet18-GN 1×28×28
//! batch 32; W4 softmax regression on 104 features batch 512; W5 the text transformer (d = 64, 4
//! heads, 2 blocks, feed-forward 128, vocabulary 2,016, T = 128 tokens, no padding, 2 classes)
//! batch 64. Modes: non-private SGD step,
//! DP materialize, DP ghost (both include the ChaCha20 noise and the optimizer step), and the
//! noise alone. `benches/opacus_step.py` times Opacus on the same workloads; see benches/README.md.
//!
//! Peak memory: `DP_STEP_MEM=<workload prefix>:<mode> cargo bench --bench dp_step` runs five steps
//! of one workload/mode and prints VmHWM (peak resident set) from /proc/self/status instead of
//! benchmarking. `DP_STEP_RATIO=W1,W2 cargo bench --bench dp_step` times alternating blocks of
//! non-private and ghost steps and prints the median ratio ([`interleaved_ratio`]).
//! `DP_STEP_SERVE=<workload prefix>:<mode>` serves timed blocks on demand ([`serve`]) for
//! `benches/versus.py`, which alternates them with Opacus's. `DP_STEP_PROFILE=W2` prints where one
//! step's time goes, phase by phase and per layer ([`profile`]); with `DP_STEP_POISSON=1` the
//! batches are Poisson-sized as in training. Filter workloads as usual, e.g.
//! `cargo bench --bench dp_step -- W1`.

use criterion::Criterion;
use crowdout::dpsgd::{Clipping, DpSettings, DpSgd, GradMode, Optimizer, OptimizerKind};
use crowdout::models::{Model, ModelKind, TransformerShape, DEFAULT_TRANSFORMER};
use crowdout::params::ParamGuard;
use crowdout::train::fit::nonprivate_step;
use rand::RngExt;
use std::hint::black_box;
use std::time::Duration;
use tch::{Device, Tensor};

struct Workload {
    name: &'static str,
    model: Model,
    x: Tensor,
    y: Tensor,
}

fn make(name: &'static str, model: Model, shape: &[i64]) -> Workload {
    // Inputs in [0, 1) and labels 0..10 from a fixed ChaCha stream.
    let mut r = crowdout::rng::stream(Some(1), crowdout::rng::Stream::Data);
    let numel: i64 = shape.iter().product();
    let x: Vec<f32> = (0..numel).map(|_| r.random::<f32>()).collect();
    let y: Vec<i64> = (0..shape[0]).map(|_| r.random_range(0..10)).collect();
    Workload { name, model, x: Tensor::from_slice(&x).reshape(shape), y: Tensor::from_slice(&y) }
}

/// Token workload: ids uniform in `3..vocab` (no padding, no specials) and labels 0..2 from the
/// same fixed stream, `[batch, t]`.
fn make_tokens(name: &'static str, model: Model, batch: i64, t: i64, vocab: i64) -> Workload {
    let mut r = crowdout::rng::stream(Some(1), crowdout::rng::Stream::Data);
    let x: Vec<i64> = (0..batch * t).map(|_| r.random_range(3..vocab)).collect();
    let y: Vec<i64> = (0..batch).map(|_| r.random_range(0..2)).collect();
    Workload { name, model, x: Tensor::from_slice(&x).reshape([batch, t]), y: Tensor::from_slice(&y) }
}

const NAMES: [&str; 5] =
    ["W1-mlp-b256", "W2-cnn-b256", "W3-resnet18gn-b32", "W4-softmax104-b512", "W5-transformer-t128-b64"];

/// W5's vocabulary: the experiments' 2,000 words plus the 16 unseen (plantable) ids.
const W5_VOCAB: i64 = 2016;
const W5_T: i64 = 128;

fn workload(name: &'static str) -> Workload {
    let dev = Device::Cpu;
    match name {
        "W1-mlp-b256" => make(name, Model::mlp(&[784], &[256], 10, Some(1), dev).unwrap(), &[256, 784]),
        "W2-cnn-b256" => make(
            name,
            Model::new(&ModelKind::Cnn, &[1, 28, 28], 10, Some(1), dev).unwrap(),
            &[256, 1, 28, 28],
        ),
        "W3-resnet18gn-b32" => make(
            name,
            Model::new(&ModelKind::Resnet18Gn, &[1, 28, 28], 10, Some(1), dev).unwrap(),
            &[32, 1, 28, 28],
        ),
        "W5-transformer-t128-b64" => {
            let shape = TransformerShape { vocab: W5_VOCAB, ..DEFAULT_TRANSFORMER };
            make_tokens(
                name,
                Model::transformer(&[W5_T], &shape, 2, Some(1), dev).unwrap(),
                64,
                W5_T,
                W5_VOCAB,
            )
        }
        _ => make(name, Model::new(&ModelKind::Softmax, &[104], 10, Some(1), dev).unwrap(), &[512, 104]),
    }
}

fn dp(mode: GradMode) -> DpSettings {
    DpSettings {
        noise_multiplier: 1.0,
        max_grad_norm: 1.0,
        clipping: Clipping::Flat,
        grad_mode: mode,
        max_physical_batch: None,
    }
}

/// One step of a mode: "nonprivate", "materialize", "ghost" or "noise".
struct Stepper {
    opt: Optimizer,
    dpsgd: Option<DpSgd>,
    noise_only: bool,
}

impl Stepper {
    fn new(w: &Workload, mode: &str) -> Stepper {
        let opt = Optimizer::new(OptimizerKind::Sgd, 1e-3, 0.0, 0.0, &w.model.parameters());
        let n = w.x.size()[0] as f64;
        let dpsgd = match mode {
            "materialize" => {
                Some(DpSgd::new(&w.model, dp(GradMode::Materialize).check().unwrap(), n, Some(3)).unwrap())
            }
            "ghost" | "noise" => {
                Some(DpSgd::new(&w.model, dp(GradMode::Ghost).check().unwrap(), n, Some(3)).unwrap())
            }
            _ => None,
        };
        Stepper { opt, dpsgd, noise_only: mode == "noise" }
    }
    fn step(&mut self, w: &Workload) {
        match &mut self.dpsgd {
            Some(d) if self.noise_only => d.write_noise(),
            Some(d) => {
                black_box(d.privatise(&w.model, &w.x, &w.y).loss_sum);
                self.opt.step(&w.model.parameters(), d.grads());
            }
            None => {
                black_box(nonprivate_step(&w.model, &mut self.opt, &w.x, &w.y));
            }
        }
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The DP/non-private ratio measured robustly: blocks of non-private and ghost steps alternate
/// (ROUNDS rounds, after one warm-up round), each block timed as a whole; prints the median
/// per-step time of each mode and the median of the per-round ratios. Slow phases of the machine
/// hit both modes of a round alike, which a sequential criterion run cannot promise.
fn interleaved_ratio(wname: &str) {
    const ROUNDS: usize = 21;
    let name = NAMES.into_iter().find(|n| n.starts_with(wname)).expect("unknown workload");
    let w = workload(name);
    let per = match &name[..2] {
        "W3" => 2,
        "W2" | "W5" => 10,
        _ => 50,
    };
    let mut np = Stepper::new(&w, "nonprivate");
    let mut gh = Stepper::new(&w, "ghost");
    let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let block = |s: &mut Stepper| {
            let t = std::time::Instant::now();
            for _ in 0..per {
                s.step(&w);
            }
            t.elapsed().as_secs_f64() / per as f64
        };
        let (tn, tg) = (block(&mut np), block(&mut gh));
        if round > 0 {
            a.push(tn);
            b.push(tg);
            r.push(tg / tn);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb, mr) = (median(&mut a), median(&mut b), median(&mut r));
    println!("{name}: interleaved over {ROUNDS} rounds of {per} steps: non-private {:.3} ms, ghost {:.3} ms, ghost/non-private median {mr:.2} (range {:.2}–{:.2})", ma * 1e3, mb * 1e3, r[0], r[r.len() - 1]);
}

/// Answer timing requests on stdin: a line `K` runs K steps of one workload/mode and prints the
/// mean seconds per step; end of input ends. Prints `ready` once built and warmed up (5 steps).
/// The protocol is shared with `benches/opacus_step.py --serve`.
fn serve(spec: &str) {
    use std::io::{BufRead, Write};
    let (wname, mode) = spec.split_once(':').expect("DP_STEP_SERVE=<workload>:<mode>");
    let name = NAMES.into_iter().find(|n| n.starts_with(wname)).expect("unknown workload");
    let w = workload(name);
    let mut s = Stepper::new(&w, mode);
    for _ in 0..5 {
        s.step(&w);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let k: usize = line.unwrap().trim().parse().expect("a step count");
        let t = std::time::Instant::now();
        for _ in 0..k {
            s.step(&w);
        }
        writeln!(out, "{}", t.elapsed().as_secs_f64() / k as f64).unwrap();
        out.flush().unwrap();
    }
}

/// Where one step's time goes, per phase, on the workload at its batch size: the non-private step
/// (forward, backward to the parameters, optimizer) against the ghost step (noise, forward with
/// the tape, backward to the layer outputs, per-layer norms or kept per-sample gradients, clip
/// factors, per-layer clipped sums, optimizer). The ghost phases are the body of
/// `dpsgd::engine::clipped_grad_sum` spelled out so that each can be timed; the sums are formed but
/// not added into `DpSgd`'s buffer (a few µs), and the optimizer steps on its noise. Each phase is
/// timed over `DP_STEP_STEPS` steps (default 200) after 10 warm-up steps; libtorch's kernels are
/// synchronous on the CPU, so wall time per phase is what the phase costs.
fn profile(wname: &str) {
    use crowdout::dpsgd::engine::clip_factors;
    use crowdout::models::layer::{sq_norms_of, weighted_sum};
    use crowdout::models::Tape;
    use std::time::Instant;
    let steps: usize = std::env::var("DP_STEP_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let name = NAMES.into_iter().find(|n| n.starts_with(wname)).expect("unknown workload");
    let w = workload(name);
    let params = w.model.parameters();
    let mut opt = Optimizer::new(OptimizerKind::Sgd, 1e-3, 0.9, 0.0, &params);
    let mut np = [0f64; 3];
    let mut gh = [0f64; 8];
    let mut per_layer: Vec<(&str, bool, f64)> = Vec::new();
    let n = w.x.size()[0] as f64;
    let mut poisson = std::env::var("DP_STEP_POISSON")
        .is_ok_and(|v| v == "1")
        .then(|| crowdout::dpsgd::PoissonSampler::new(60_000, n / 60_000.0, Some(5)).unwrap());
    let mut sizes: Vec<usize> = Vec::new();
    // DP_STEP_BATCH=N: a fixed batch of N examples (repeating the workload's), to tell the cost of
    // a batch size apart from that of varying sizes.
    let fixed: Option<i64> = std::env::var("DP_STEP_BATCH").ok().and_then(|v| v.parse().ok());
    let mut dps = DpSgd::new(&w.model, dp(GradMode::Ghost).check().unwrap(), 256.0, Some(3)).unwrap();
    for it in 0..steps + 10 {
        let keep = it >= 10;
        let mut lap = {
            let mut t = Instant::now();
            move |acc: &mut f64| {
                let e = t.elapsed().as_secs_f64();
                if keep {
                    *acc += e;
                }
                t = Instant::now();
            }
        };
        // The batch: the workload's, or (DP_STEP_POISSON=1) a Poisson batch of its examples, as the
        // training loop feeds it: sizes vary from step to step around the same mean (q = B/N with
        // N = 60,000), examples taken with repetition from the workload's batch.
        let idx: Option<Vec<i64>> = match (&mut poisson, fixed) {
            (Some(s), _) => Some(s.sample()),
            (None, Some(b)) => Some((0..b).collect()),
            (None, None) => None,
        };
        let (x, y) = match idx {
            None => (w.x.shallow_clone(), w.y.shallow_clone()),
            Some(idx) => {
                if poisson.is_some() {
                    sizes.push(idx.len());
                }
                let it = Tensor::from_slice(&idx).remainder(w.x.size()[0]);
                (w.x.index_select(0, &it), w.y.index_select(0, &it))
            }
        };
        // non-private
        let loss = Model::per_example_loss(&w.model.forward(&x, None), &y).mean(tch::Kind::Float);
        lap(&mut np[0]);
        let grads = Tensor::run_backward(&[&loss], &params, false, false);
        lap(&mut np[1]);
        opt.step(&params, &grads);
        black_box(loss.double_value(&[]));
        lap(&mut np[2]);
        // ghost
        dps.write_noise();
        lap(&mut gh[0]);
        let mut tape = Tape::default();
        let logits = w.model.forward(&x, Some(&mut tape));
        let loss = Model::per_example_loss(&logits, &y).sum(tch::Kind::Float);
        lap(&mut gh[1]);
        let zs: Vec<&Tensor> = tape.entries.iter().map(|e| &e.z).collect();
        let gs = Tensor::run_backward(&[&loss], &zs, false, false);
        lap(&mut gh[2]);
        tch::no_grad(|| {
            let mut held = Vec::new();
            let mut sq = Vec::new();
            for (k, (e, g)) in tape.entries.iter().zip(&gs).enumerate() {
                let s = w.model.layers[e.layer].sampler();
                let t = Instant::now();
                if s.ghost_is_cheaper(&e.a, g) {
                    sq.push(s.ghost_sq_norm(&e.a, g));
                    held.push(None);
                } else {
                    let v = s.grad_sample(&e.a, g);
                    sq.push(sq_norms_of(&v));
                    held.push(Some(v));
                }
                if keep {
                    if per_layer.len() <= k {
                        per_layer.push((w.model.layers[e.layer].name(), held[k].is_none(), 0.0));
                    }
                    per_layer[k].2 += t.elapsed().as_secs_f64();
                }
            }
            lap(&mut gh[3]);
            let f = clip_factors(&sq, 1.0, Clipping::Flat);
            lap(&mut gh[4]);
            let mut sums = Vec::new();
            for ((e, g), (h, c)) in tape.entries.iter().zip(&gs).zip(held.into_iter().zip(&f)) {
                match h {
                    Some(v) => sums.extend(v.iter().map(|gp| weighted_sum(gp, c))),
                    None => sums.extend(w.model.layers[e.layer].sampler().clipped_sum(&e.a, g, c)),
                }
            }
            lap(&mut gh[5]);
            black_box(loss.double_value(&[]));
            black_box(sums.len());
            lap(&mut gh[6]);
        });
        opt.step(&params, dps.grads());
        lap(&mut gh[7]);
    }
    let ms = |v: f64| v * 1e3 / steps as f64;
    let npt: f64 = np.iter().sum();
    let ght: f64 = gh.iter().sum();
    println!(
        "{name} non-private {:.3} ms: forward {:.3}, backward {:.3}, optimizer+loss {:.3}",
        ms(npt),
        ms(np[0]),
        ms(np[1]),
        ms(np[2])
    );
    println!(
        "{name} ghost {:.3} ms: noise {:.3}, forward+tape {:.3}, backward to z {:.3}, norms {:.3}, factors {:.3}, clipped sums {:.3}, loss read {:.3}, optimizer {:.3}",
        ms(ght),
        ms(gh[0]),
        ms(gh[1]),
        ms(gh[2]),
        ms(gh[3]),
        ms(gh[4]),
        ms(gh[5]),
        ms(gh[6]),
        ms(gh[7])
    );
    let layers: Vec<String> = per_layer
        .iter()
        .map(|(n, ghost, t)| format!("{n} {} {:.3}", if *ghost { "ghost" } else { "kept" }, ms(*t)))
        .collect();
    println!("{name} norms per layer (ms): {}", layers.join(", "));
    if let (Some(lo), Some(hi)) = (sizes.iter().min(), sizes.iter().max()) {
        let distinct = sizes.iter().collect::<std::collections::BTreeSet<_>>().len();
        println!("{name} Poisson batches: sizes {lo}–{hi}, {distinct} distinct over {} steps", sizes.len());
    }
}

fn main() {
    // As the `crowdout` binary does (see crowdout::malloc).
    crowdout::malloc::tune();
    tch::set_num_threads(2);
    rayon::ThreadPoolBuilder::new().num_threads(2).build_global().ok();
    if let Ok(spec) = std::env::var("DP_STEP_MEM") {
        let (wname, mode) = spec.split_once(':').unwrap_or((spec.as_str(), "ghost"));
        let name = NAMES.into_iter().find(|n| n.starts_with(wname)).expect("unknown workload");
        // Only this workload is built, so the peak is what a training process of it would hold.
        let w = workload(name);
        let setup = vm_hwm_kib().unwrap_or(0);
        let mut s = Stepper::new(&w, mode);
        for _ in 0..5 {
            s.step(&w);
        }
        let peak = vm_hwm_kib().unwrap_or(0);
        println!(
            "{} {mode}: VmHWM {:.1} MiB (after building the workload {:.1} MiB)",
            w.name,
            peak as f64 / 1024.0,
            setup as f64 / 1024.0
        );
        return;
    }
    if let Ok(spec) = std::env::var("DP_STEP_PROFILE") {
        for wname in spec.split(',') {
            profile(wname);
        }
        return;
    }
    if let Ok(spec) = std::env::var("DP_STEP_SERVE") {
        serve(&spec);
        return;
    }
    if let Ok(spec) = std::env::var("DP_STEP_RATIO") {
        for wname in spec.split(',') {
            interleaved_ratio(wname);
        }
        return;
    }
    // No HTML plots: the crate builds plotters without system fonts (criterion would panic).
    let mut c = Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for w in NAMES.map(workload) {
        let mut g = c.benchmark_group(w.name);
        if w.name.starts_with("W3") {
            g.sample_size(10).sampling_mode(criterion::SamplingMode::Flat);
        } else {
            g.sample_size(20);
        }
        for mode in ["nonprivate", "materialize", "ghost", "noise"] {
            let mut s = Stepper::new(&w, mode);
            g.bench_function(mode, |b| b.iter(|| s.step(&w)));
        }
        g.finish();
    }
    c.final_summary();
}
