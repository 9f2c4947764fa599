//! Step time of the MF-Transformer recommender (src/recsys): our non-private step against our
//! DP-SGD step (per-playlist clipping with the tied-embedding ghost norm, ChaCha20 noise on every
//! coordinate), both followed by the same Adam update, on one pre-built batch (negatives
//! included) of 64 playlists × 4 windows from the default 2,000-playlist corpus of
//! experiments/recsys-*.toml. CPU, float32, 1 libtorch thread. `cargo bench --bench recsys_step`.
//!
//! `RECSYS_STEP_RATIO=<rounds> cargo bench --bench recsys_step` instead alternates blocks of 5
//! non-private and 5 DP steps for that many rounds and prints the median per-round ratio
//! DP/non-private, which a busy shared machine disturbs far less than two sequential runs.

use criterion::Criterion;
use crowdout::dpsgd::{NoiseSource, Optimizer, OptimizerKind};
use crowdout::recsys::experiment::{step_grads, Privacy};
use crowdout::recsys::model::{make_batch, Batch, RecModel, RecShape};
use crowdout::recsys::synth::{generate, SynthConfig};
use crowdout::rng::{stream, Stream};
use std::hint::black_box;
use std::time::Duration;

/// The model and one batch (64 playlists × 4 windows, negatives drawn) of the default corpus.
fn workload() -> (RecModel, Batch) {
    let corpus = generate(&SynthConfig { playlists: 2000, ..SynthConfig::default() }).unwrap();
    let model =
        RecModel::new(corpus.n_songs as i64 + 2, RecShape::default(), &mut stream(Some(1), Stream::Init))
            .unwrap();
    let recs: Vec<&[u32]> = corpus.playlists[..64].iter().map(|p| p.as_slice()).collect();
    let batch = make_batch(&model, &recs, 4, &mut stream(Some(2), Stream::Data));
    (model, batch)
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(1);
    let (model, batch) = workload();
    let params = model.parameters();
    let mut g = c.benchmark_group("recsys-step-b64x4");
    g.sample_size(20).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    for (name, privacy, sigma) in
        [("non-private", Privacy::NonPrivate, 0.0), ("dp-sgd", Privacy::Epsilon(8.0), 1.0)]
    {
        let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, 0.0, &params);
        let mut noise = NoiseSource::new(Some(3));
        g.bench_function(name, |b| {
            b.iter(|| {
                let (grads, loss) = step_grads(&model, Some(&batch), privacy, sigma, 1.0, 64.0, &mut noise);
                opt.step(&params, &grads);
                black_box(loss)
            })
        });
    }
    g.finish();
}

/// Alternating blocks: median over rounds of (DP block time)/(non-private block time).
fn ratio(rounds: usize) {
    tch::set_num_threads(1);
    let (model, batch) = workload();
    let params = model.parameters();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, 0.0, &params);
    let mut noise = NoiseSource::new(Some(3));
    let mut block = |privacy: Privacy, sigma: f64| {
        let t = std::time::Instant::now();
        for _ in 0..5 {
            let (grads, loss) = step_grads(&model, Some(&batch), privacy, sigma, 1.0, 64.0, &mut noise);
            opt.step(&params, &grads);
            black_box(loss);
        }
        t.elapsed().as_secs_f64() / 5.0
    };
    block(Privacy::NonPrivate, 0.0);
    block(Privacy::Epsilon(8.0), 1.0);
    let mut r = Vec::new();
    let (mut np, mut dp) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = block(Privacy::NonPrivate, 0.0);
        let b = block(Privacy::Epsilon(8.0), 1.0);
        np.push(a);
        dp.push(b);
        r.push(b / a);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    println!(
        "recsys step b64x4, {rounds} rounds: non-private median {:.1} ms, DP median {:.1} ms, median ratio DP/non-private {:.2}",
        1e3 * med(&mut np),
        1e3 * med(&mut dp),
        med(&mut r)
    );
}

fn main() {
    // As the `crowdout` binary does (see crowdout::malloc): without it every step's table-sized
    // tensors come from fresh mmap pages, and page faults dominate the DP step.
    crowdout::malloc::tune();
    if let Ok(v) = std::env::var("RECSYS_STEP_RATIO") {
        ratio(v.parse().expect("RECSYS_STEP_RATIO=<rounds>"));
        return;
    }
    // No HTML plots: the crate builds plotters without system fonts (criterion would panic).
    let mut c = Criterion::default().without_plots().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
