//! One recommender experiment: split the corpus (test = playlists with > 20 songs), draw the
//! collective(s), plant the target song(s), train the model non-privately, clip-only or with
//! DP-SGD (one playlist = one record), and measure amplification and platform quality.
//!
//! DP-SGD here: Poisson sampling of playlists with rate q = L/N; each sampled playlist gives `w`
//! random windows, all in its one gradient ∇ℓ_i (ℓ_i = Σ of its windows' losses), clipped to C;
//! g̃ = (Σ_i min(1, C/‖∇ℓ_i‖)∇ℓ_i + σC·ξ)/L with ξ from the ChaCha20 noise source; Adam on g̃
//! (post-processing). σ is calibrated (RDP, [`crate::accountant::calibrate_sigma`]) to the target
//! ε at δ for T = ⌊epochs/q⌋ steps. The non-private reference takes Σ_i ∇ℓ_i / L with the same
//! sampling; clip-only clips with σ = 0.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::metric::{self, ListQuality};
use super::model::{left_pad, make_batch, Batch, RecModel, RecShape};
use super::strategy::{plant, Strategy};
use super::synth::{song_counts, Corpus, SynthConfig};
use super::RecsysError;
use crate::accountant::{calibrate_sigma, epsilon, steps_for_epochs, Method, Phase};
use crate::dpsgd::{NoiseSource, Optimizer, OptimizerKind, PoissonSampler};
use crate::rng::{stream, Stream};

/// The privacy of one training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Privacy {
    NonPrivate,
    /// Per-playlist clipping to C, no noise.
    ClipOnly,
    /// DP-SGD calibrated to this ε (at the config's δ).
    Epsilon(f64),
}

impl Privacy {
    /// `non-private`, `clip-only` or `eps=<ε>`.
    pub fn parse(s: &str) -> Result<Privacy, RecsysError> {
        let bad = || RecsysError::Invalid {
            field: "privacy",
            value: s.to_string(),
            reason: "expected non-private, clip-only or eps=<ε > 0>",
        };
        match s {
            "non-private" => Ok(Privacy::NonPrivate),
            "clip-only" => Ok(Privacy::ClipOnly),
            _ => {
                let e: f64 = s.strip_prefix("eps=").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if e.is_finite() && e > 0.0 {
                    Ok(Privacy::Epsilon(e))
                } else {
                    Err(bad())
                }
            }
        }
    }
    pub fn label(&self) -> String {
        match self {
            Privacy::NonPrivate => "non-private".into(),
            Privacy::ClipOnly => "clip-only".into(),
            Privacy::Epsilon(e) => format!("eps={e}"),
        }
    }
}

/// Training settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: f64,
    /// Expected batch size L (playlists per step); q = L/N.
    pub batch: usize,
    /// Windows per playlist and step (all in the playlist's one clipped gradient).
    pub windows: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Clipping norm C (clip-only and DP).
    pub clip: f64,
    /// δ of the DP guarantee.
    pub delta: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { epochs: 10.0, batch: 64, windows: 1, lr: 2e-3, clip: 1.0, delta: 1e-5 }
    }
}

/// A whole experiment grid (one TOML file).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    pub corpus: SynthConfig,
    pub model: RecShape,
    pub train: TrainConfig,
    /// Test playlists (drawn from those with > 20 songs), 10 seed groups.
    pub n_test: usize,
    /// Length of the recommendation list (paper: 500).
    pub n_recos: usize,
    /// `non-private`, `clip-only`, `eps=<ε>`.
    pub privacy: Vec<String>,
    pub strategies: Vec<Strategy>,
    /// Collective sizes in playlists.
    pub budgets: Vec<usize>,
    /// Training seeds (each also redraws the split and the collective, like the paper's folds).
    pub seeds: Vec<u64>,
    /// A second collective of the same size promoting another new song with this strategy.
    pub second: Option<Strategy>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            corpus: SynthConfig::default(),
            model: RecShape::default(),
            train: TrainConfig::default(),
            n_test: 500,
            n_recos: 500,
            privacy: vec!["non-private".into()],
            strategies: vec![Strategy::Random, Strategy::DirLoF],
            budgets: vec![10],
            seeds: vec![0],
            second: None,
        }
    }
}

/// What one training and evaluation measured, for one collective (or the reference).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunRow {
    pub privacy: String,
    pub epsilon: f64,
    pub sigma: f64,
    pub seed: u64,
    /// `none` for the no-collective reference.
    pub strategy: String,
    pub budget: usize,
    /// budget / training playlists.
    pub alpha: f64,
    /// 0 for the first collective, 1 for the second.
    pub collective: usize,
    /// The other collective's strategy, if any.
    pub other: String,
    pub hits: usize,
    pub sum_r: usize,
    pub n_train: usize,
    pub amplification: f64,
    pub r_precision: f64,
    pub ndcg: f64,
    pub final_loss: f64,
    pub steps: u64,
    pub seconds: f64,
}

/// Split indices: test playlists (> 20 songs) and the rest, from the seed's collective stream.
pub fn split(corpus: &Corpus, n_test: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), RecsysError> {
    use rand::seq::SliceRandom;
    let mut cand: Vec<usize> =
        (0..corpus.playlists.len()).filter(|i| corpus.playlists[*i].len() > 20).collect();
    if cand.len() < n_test + 1 {
        return Err(RecsysError::Invalid {
            field: "n_test",
            value: n_test.to_string(),
            reason: "more than the playlists with > 20 songs",
        });
    }
    let mut r = stream(Some(seed.wrapping_add(42)), Stream::Shuffle);
    cand.shuffle(&mut r);
    let mut test: Vec<usize> = cand[..n_test].to_vec();
    test.sort_unstable();
    let is_test: HashSet<usize> = test.iter().copied().collect();
    let train = (0..corpus.playlists.len()).filter(|i| !is_test.contains(i)).collect();
    Ok((test, train))
}

/// Train `model` on `train` playlists; returns (final mean loss per record, steps, σ).
pub fn train(
    model: &RecModel,
    train: &[Vec<u32>],
    cfg: &TrainConfig,
    privacy: Privacy,
    seed: u64,
) -> Result<(f64, u64, f64), RecsysError> {
    let n = train.len();
    let q = (cfg.batch as f64 / n as f64).min(1.0);
    let steps = steps_for_epochs(q, cfg.epochs).max(1);
    let sigma = match privacy {
        Privacy::Epsilon(e) => calibrate_sigma(Method::Rdp, e, cfg.delta, q, steps)
            .map_err(|err| RecsysError::Accountant(err.to_string()))?,
        _ => 0.0,
    };
    let params = model.parameters();
    let mut opt = Optimizer::new(OptimizerKind::Adam, cfg.lr, 0.0, 0.0, &params);
    let mut sampler =
        PoissonSampler::new(n, q, Some(seed)).map_err(|e| RecsysError::Accountant(e.to_string()))?;
    let mut noise = NoiseSource::new(Some(seed));
    let mut rng = stream(Some(seed), Stream::Shuffle);
    let expected = q * n as f64;
    let mut last = f64::NAN;
    for _ in 0..steps {
        let idx = sampler.sample();
        let recs: Vec<&[u32]> = idx.iter().map(|i| train[*i as usize].as_slice()).collect();
        let b = (!recs.is_empty()).then(|| make_batch(model, &recs, cfg.windows, &mut rng));
        let (grads, loss) = step_grads(model, b.as_ref(), privacy, sigma, cfg.clip, expected, &mut noise);
        if !recs.is_empty() {
            last = loss / recs.len() as f64;
        }
        opt.step(&params, &grads);
    }
    Ok((last, steps, sigma))
}

/// The gradient the optimizer sees for one logical batch `b` (None: empty) and Σ ℓ_i:
/// non-private Σ_i ∇ℓ_i / L; clip-only Σ_i c_i ∇ℓ_i / L; DP (Σ_i c_i ∇ℓ_i + σC·ξ)/L, with
/// c_i = min(1, C/‖∇ℓ_i‖) over the record's whole gradient and L = `expected` (qN).
pub fn step_grads(
    model: &RecModel,
    b: Option<&Batch>,
    privacy: Privacy,
    sigma: f64,
    clip: f64,
    expected: f64,
    noise: &mut NoiseSource,
) -> (Vec<Tensor>, f64) {
    let (sums, loss) = match (b, privacy) {
        (None, _) => (model.parameters().iter().map(|p| p.zeros_like()).collect(), 0.0),
        (Some(b), Privacy::NonPrivate) => model.sum_grads(b),
        (Some(b), _) => {
            let (s, l, _) = model.clipped_sum(b, clip);
            (s, l)
        }
    };
    // (Σ c_i ∇ℓ_i + σC·ξ) / L with one buffer per parameter: the noise is drawn straight into a
    // fresh tensor, the clipped sum added and L divided out in place (the same float operations,
    // in the same order, as z = ξσC; g = s + z; g / L, without three temporaries of the table's size).
    let grads = tch::no_grad(|| {
        sums.iter()
            .map(|s| {
                let s = s.detach().to_kind(Kind::Float);
                if sigma > 0.0 {
                    let mut z = Tensor::empty(s.size().as_slice(), (Kind::Float, tch::Device::Cpu));
                    noise.fill_tensor(&mut z, sigma * clip);
                    let _ = z.g_add_(&s).g_div_scalar_(expected);
                    z
                } else {
                    s / expected
                }
            })
            .collect()
    });
    (grads, loss)
}

/// Evaluation of one trained model on the test playlists.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Per target song: test playlists with it in the top-R_i.
    pub hits: Vec<usize>,
    pub sum_r: usize,
    pub quality: ListQuality,
}

/// The paper's protocol on `test` playlists for each of `targets`.
pub fn evaluate(model: &RecModel, test: &[Vec<u32>], targets: &[u32], n_recos: usize) -> Evaluation {
    let t = model.shape.window as usize;
    let k = (n_recos as i64).min(model.n_items);
    let mut hits = vec![0usize; targets.len()];
    let (mut sum_r, mut rp, mut nd) = (0usize, 0.0, 0.0);
    for (c0, chunk) in test.chunks(100).enumerate() {
        let mut rows = Vec::with_capacity(chunk.len() * t);
        let mut seeds = Vec::with_capacity(chunk.len());
        for (j, p) in chunk.iter().enumerate() {
            let g = metric::seed_size(c0 * 100 + j, test.len()).min(p.len() - 1);
            rows.extend(left_pad(&p[..g], t));
            seeds.push(g);
        }
        let inputs = Tensor::from_slice(&rows).view([chunk.len() as i64, t as i64]);
        let scores = model.scores(&inputs);
        for (j, p) in chunk.iter().enumerate() {
            for s in &p[..seeds[j]] {
                let _ = scores.get(j as i64).get(*s as i64).fill_(f64::NEG_INFINITY);
            }
        }
        let (_, top) = scores.topk(k, 1, true, true);
        let top: Vec<i64> = Vec::<i64>::try_from(top.reshape([-1])).expect("i64 indices");
        for (j, p) in chunk.iter().enumerate() {
            let list: Vec<u32> =
                top[j * k as usize..(j + 1) * k as usize].iter().map(|x| *x as u32).collect();
            let held: HashSet<u32> = p[seeds[j]..].iter().copied().collect();
            let r = held.len();
            sum_r += r;
            for (h, tg) in hits.iter_mut().zip(targets) {
                *h += metric::hit(&list, *tg, r) as usize;
            }
            let q = metric::list_quality(&list, &held);
            rp += q.r_precision;
            nd += q.ndcg;
        }
    }
    let n = test.len().max(1) as f64;
    Evaluation { hits, sum_r, quality: ListQuality { r_precision: rp / n, ndcg: nd / n } }
}

/// One cell: the reference (`strategy = None`, budget ignored) or a collective of `budget`
/// playlists with `strategy` (plus the config's second collective). Returns one row per collective.
pub fn run_cell(
    cfg: &ExperimentConfig,
    corpus: &Corpus,
    privacy: Privacy,
    seed: u64,
    strategy: Option<Strategy>,
    budget: usize,
) -> Result<Vec<RunRow>, RecsysError> {
    use rand::seq::SliceRandom;
    let start = std::time::Instant::now();
    let (test_idx, train_idx) = split(corpus, cfg.n_test, seed)?;
    let test: Vec<Vec<u32>> = test_idx.iter().map(|i| corpus.playlists[*i].clone()).collect();
    let mut train: Vec<Vec<u32>> = train_idx.iter().map(|i| corpus.playlists[*i].clone()).collect();
    let targets = [corpus.n_songs as u32, corpus.n_songs as u32 + 1];
    let mut planted: Vec<(Strategy, usize)> = Vec::new();
    if let Some(s) = strategy {
        let counts = song_counts(&train, corpus.n_songs);
        let mut cand: Vec<usize> = (0..train.len()).filter(|i| train[*i].len() > 20).collect();
        let groups = if cfg.second.is_some() { 2 } else { 1 };
        if budget == 0 || cand.len() < groups * budget {
            return Err(RecsysError::Invalid {
                field: "budgets",
                value: budget.to_string(),
                reason: "must be ≥ 1 and fit the training playlists with > 20 songs",
            });
        }
        let mut r = stream(Some(seed), Stream::Collective);
        cand.shuffle(&mut r);
        plant(&mut train, &cand[..budget], targets[0], s, &counts, &mut r);
        planted.push((s, budget));
        if let Some(s2) = cfg.second {
            plant(&mut train, &cand[budget..2 * budget], targets[1], s2, &counts, &mut r);
            planted.push((s2, budget));
        }
    }
    let n_train: usize = train.iter().map(Vec::len).sum();
    let mut init = stream(Some(seed), Stream::Init);
    let model = RecModel::new(corpus.n_songs as i64 + 2, cfg.model, &mut init)?;
    let (loss, steps, sigma) = train_checked(&model, &train, cfg, privacy, seed)?;
    let eval = evaluate(&model, &test, &targets, cfg.n_recos);
    let q = (cfg.train.batch as f64 / train.len() as f64).min(1.0);
    let eps = match privacy {
        Privacy::Epsilon(_) => epsilon(Method::Rdp, &[Phase { q, sigma, steps }], cfg.train.delta)
            .map(|r| r.epsilon)
            .unwrap_or(f64::NAN),
        _ => f64::INFINITY,
    };
    let secs = start.elapsed().as_secs_f64();
    let row = |collective: usize, strategy: String, budget: usize, other: String| RunRow {
        privacy: privacy.label(),
        epsilon: eps,
        sigma,
        seed,
        strategy,
        budget,
        alpha: budget as f64 / train.len() as f64,
        collective,
        other,
        hits: eval.hits[collective],
        sum_r: eval.sum_r,
        n_train,
        amplification: metric::amplification(eval.hits[collective], eval.sum_r, budget, n_train),
        r_precision: eval.quality.r_precision,
        ndcg: eval.quality.ndcg,
        final_loss: loss,
        steps,
        seconds: secs,
    };
    if planted.is_empty() {
        return Ok(vec![row(0, "none".into(), 0, String::new())]);
    }
    let other = |c: usize| planted.get(1 - c).map(|(s, _)| s.to_string()).unwrap_or_default();
    Ok(planted.iter().enumerate().map(|(c, (s, b))| row(c, s.to_string(), *b, other(c))).collect())
}

fn train_checked(
    model: &RecModel,
    train_set: &[Vec<u32>],
    cfg: &ExperimentConfig,
    privacy: Privacy,
    seed: u64,
) -> Result<(f64, u64, f64), RecsysError> {
    let t = &cfg.train;
    if !(t.epochs > 0.0 && t.epochs.is_finite()) {
        return Err(RecsysError::Invalid {
            field: "train.epochs",
            value: t.epochs.to_string(),
            reason: "must be > 0",
        });
    }
    if t.batch == 0 || t.windows == 0 {
        return Err(RecsysError::Invalid {
            field: "train.batch/windows",
            value: format!("{}/{}", t.batch, t.windows),
            reason: "must be ≥ 1",
        });
    }
    if !(t.clip > 0.0 && t.clip.is_finite()) {
        return Err(RecsysError::Invalid {
            field: "train.clip",
            value: t.clip.to_string(),
            reason: "must be > 0",
        });
    }
    if !(t.delta > 0.0 && t.delta < 1.0) {
        return Err(RecsysError::Invalid {
            field: "train.delta",
            value: t.delta.to_string(),
            reason: "must be in (0, 1)",
        });
    }
    train(model, train_set, t, privacy, seed)
}

/// Summary of one (privacy, strategy, budget, collective) group over seeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub privacy: String,
    pub epsilon: f64,
    pub strategy: String,
    pub other: String,
    pub collective: usize,
    pub budget: usize,
    pub alpha: f64,
    pub seeds: usize,
    pub hits: usize,
    /// Σ over the same seeds of the no-collective run's hits for the (then untrained) first
    /// target song: what an untrained row of the table gets by chance.
    pub reference_hits: usize,
    pub amplification: f64,
    pub amplification_lo: f64,
    pub amplification_hi: f64,
    pub r_precision: f64,
    /// Mean over seeds of (this run's R-precision − the same seed's no-collective run's).
    pub r_precision_delta: f64,
    pub ndcg: f64,
    pub ndcg_delta: f64,
}

/// Group `rows` over seeds: mean amplification with a 95 % Student-t interval over seeds, and the
/// quality change against the same privacy level and seed's `none` run.
pub fn summarize(rows: &[RunRow]) -> Vec<SummaryRow> {
    let mut keys: Vec<(String, String, String, usize, usize)> = Vec::new();
    for r in rows {
        let k = (r.privacy.clone(), r.strategy.clone(), r.other.clone(), r.collective, r.budget);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let reference =
        |p: &str, seed: u64| rows.iter().find(|r| r.privacy == p && r.seed == seed && r.strategy == "none");
    keys.into_iter()
        .map(|(p, s, o, c, b)| {
            let g: Vec<&RunRow> = rows
                .iter()
                .filter(|r| {
                    r.privacy == p && r.strategy == s && r.other == o && r.collective == c && r.budget == b
                })
                .collect();
            let mean = |f: &dyn Fn(&RunRow) -> f64| g.iter().map(|r| f(r)).sum::<f64>() / g.len() as f64;
            let amps: Vec<f64> = g.iter().map(|r| r.amplification).collect();
            let (a, lo, hi) = metric::t_interval(&amps, 0.05).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            let delta = |f: &dyn Fn(&RunRow) -> f64| {
                let d: Vec<f64> =
                    g.iter().filter_map(|r| reference(&p, r.seed).map(|z| f(r) - f(z))).collect();
                if d.is_empty() {
                    f64::NAN
                } else {
                    d.iter().sum::<f64>() / d.len() as f64
                }
            };
            SummaryRow {
                privacy: p.clone(),
                epsilon: mean(&|r| r.epsilon),
                strategy: s.clone(),
                other: o.clone(),
                collective: c,
                budget: b,
                alpha: mean(&|r| r.alpha),
                seeds: g.len(),
                hits: g.iter().map(|r| r.hits).sum(),
                reference_hits: g.iter().filter_map(|r| reference(&p, r.seed).map(|z| z.hits)).sum(),
                amplification: a,
                amplification_lo: lo,
                amplification_hi: hi,
                r_precision: mean(&|r| r.r_precision),
                r_precision_delta: delta(&|r| r.r_precision),
                ndcg: mean(&|r| r.ndcg),
                ndcg_delta: delta(&|r| r.ndcg),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privacy_labels_parse_and_bad_ones_name_the_value() {
        assert_eq!(Privacy::parse("eps=8").unwrap(), Privacy::Epsilon(8.0));
        assert_eq!(Privacy::parse("clip-only").unwrap(), Privacy::ClipOnly);
        assert_eq!(Privacy::parse(&Privacy::Epsilon(2.0).label()).unwrap(), Privacy::Epsilon(2.0));
        let e = Privacy::parse("eps=-1").unwrap_err().to_string();
        assert!(e.contains("privacy") && e.contains("eps=-1"), "{e}");
    }

    #[test]
    fn split_keeps_test_playlists_long_and_disjoint() {
        let corpus =
            super::super::synth::generate(&SynthConfig { playlists: 300, ..Default::default() }).unwrap();
        let (test, train) = split(&corpus, 50, 3).unwrap();
        assert_eq!(test.len(), 50);
        assert_eq!(test.len() + train.len(), corpus.playlists.len());
        assert!(test.iter().all(|i| corpus.playlists[*i].len() > 20 && !train.contains(i)));
        assert!(split(&corpus, 10_000, 3).unwrap_err().to_string().contains("n_test"));
    }

    #[test]
    fn privatised_step_is_clipped_sum_plus_noise_over_l_bit_for_bit() {
        use super::super::model::{make_batch, RecModel, RecShape};
        use crate::rng::{stream, Stream};
        let corpus =
            super::super::synth::generate(&SynthConfig { playlists: 120, ..Default::default() }).unwrap();
        let model =
            RecModel::new(corpus.n_songs as i64 + 2, RecShape::default(), &mut stream(Some(1), Stream::Init))
                .unwrap();
        let recs: Vec<&[u32]> = corpus.playlists[..8].iter().map(|p| p.as_slice()).collect();
        let batch = make_batch(&model, &recs, 2, &mut stream(Some(2), Stream::Data));
        let (sigma, clip, l) = (0.7, 1.3, 8.0);
        let (got, _) = step_grads(
            &model,
            Some(&batch),
            Privacy::Epsilon(8.0),
            sigma,
            clip,
            l,
            &mut NoiseSource::new(Some(3)),
        );
        // The definition, with one temporary per operation: g̃ = (Σ c_i ∇ℓ_i + σC·ξ) / L.
        let (sums, _, _) = model.clipped_sum(&batch, clip);
        let mut noise = NoiseSource::new(Some(3));
        for (g, s) in got.iter().zip(&sums) {
            let mut z = Tensor::zeros(s.size().as_slice(), (Kind::Float, tch::Device::Cpu));
            noise.fill_tensor(&mut z, sigma * clip);
            let want = (s.detach() + z) / l;
            assert!(g.equal(&want), "privatised gradient differs from (s + σCξ)/L");
        }
        // Non-private: the plain sum over L.
        let (np, _) = step_grads(
            &model,
            Some(&batch),
            Privacy::NonPrivate,
            0.0,
            clip,
            l,
            &mut NoiseSource::new(Some(3)),
        );
        let (sums, _) = model.sum_grads(&batch);
        for (g, s) in np.iter().zip(&sums) {
            assert!(g.equal(&(s.detach() / l)));
        }
    }
}
