//! Criterion benches of the privacy accountant at the MNIST-like setting q = 256/60000, σ = 1.1,
//! T = 10⁴ steps, δ = 1e-5: RDP ε (151 Opacus orders) and PLD ε (Δ = 1e-4, both directions).
//! The side-by-side against Google's dp_accounting is `benches/dp_accounting_compare.py`.

use criterion::{criterion_group, criterion_main, Criterion};
use crowdout::accountant::{self, group, Method, Phase};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let p = [Phase { q: 256.0 / 60000.0, sigma: 1.1, steps: 10_000 }];
    c.bench_function("rdp_epsilon_T1e4", |b| {
        b.iter(|| accountant::epsilon(Method::Rdp, black_box(&p), 1e-5).unwrap())
    });
    let mut g = c.benchmark_group("pld");
    g.sample_size(20);
    g.bench_function("pld_epsilon_T1e4", |b| {
        b.iter(|| accountant::epsilon(Method::Pld, black_box(&p), 1e-5).unwrap())
    });
    g.bench_function("group_k4_epsilon_T1e4", |b| {
        b.iter(|| group::group_epsilon(4, 256.0 / 60000.0, black_box(1.1), 10_000, 1e-5).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // No HTML plots: the crate builds plotters without system fonts (criterion would panic).
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
