//! A synthetic playlist corpus calibrated to the published statistics of the Spotify Million
//! Playlist Dataset (MPD `stats.txt`; ../shared/recsys-notes.md §2.4), since the MPD cannot be
//! fetched here. Pure Rust, no torch; deterministic from the seed.
//!
//! # Construction
//! 1. **Lengths.** L_i ~ LogNormal(μ, s²) truncated to `[min_len, max_len]` by rejection, rounded;
//!    μ is solved (bisection) so that the truncated mean
//!    E[L | a ≤ L ≤ b] = e^{μ+s²/2} [Φ((ln b − μ − s²)/s) − Φ((ln a − μ − s²)/s)] / [Φ((ln b − μ)/s) − Φ((ln a − μ)/s)]
//!    equals `mean_len` (MPD: 66.35, range 5–250).
//! 2. **Song counts.** Every song gets a target count c_j ~ P(c = k) ∝ k^{−a} on k ∈ {1, …, c_max}
//!    with c_max = ⌈top_share · P⌉, the exponent a solved so that P(c = 1) = `singleton_share`
//!    (MPD: "nearly half" of the tracks occur once; the top track is in ≈ 4.5 % of playlists).
//!    Song 0 gets exactly c_max (the top song). Songs are drawn until Σ c_j ≥ Σ L_i.
//!    Ids are ranks by target count (0 = most popular).
//! 3. **Clusters and order.** Songs are split uniformly at random over `clusters` latent
//!    clusters, each holding an urn with c_j copies of song j. Every song has `successors`
//!    successor songs in its own cluster, drawn ∝ c (popular songs are likelier successors).
//!    A playlist picks a primary cluster ∝ its urn size and, with probability `p_second`, a second
//!    one; each next song is, with probability `p_follow`, the first available successor of the
//!    previous song (a sparse Markov chain: the next-song signal), else a draw from the urn of the
//!    primary (prob. 0.7) or secondary cluster. Songs never repeat within a playlist (MPD
//!    preprocessing keeps the first occurrence only) and no song exceeds its target count, so
//!    the realised counts track the calibrated ones; an exhausted urn hands over to the fullest one.
//!
//! The realised statistics are measured by [`CorpusStats::of`] and checked against
//! [`TARGETS`] in the tests (table in `docs/recsys.md`). The mean count per song (MPD: 29.3)
//! cannot be matched at small scale together with the singleton share and the top share
//! (it grows with c_max, i.e. with P); it is reported, not calibrated.

use rand::seq::SliceRandom;
use rand::RngExt;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::RecsysError;
use crate::rng::{stream, ChaCha20Rng, Stream};

/// Settings of the generator. Defaults: 4,000 playlists (small enough for 2 cores).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Number of playlists P.
    pub playlists: usize,
    /// Target mean playlist length (unique songs).
    pub mean_len: f64,
    /// Log-scale standard deviation s of the length distribution.
    pub len_log_sd: f64,
    /// Shortest playlist.
    pub min_len: usize,
    /// Longest playlist.
    pub max_len: usize,
    /// Target share of songs that occur exactly once.
    pub singleton_share: f64,
    /// Target share of playlists that contain the most popular song.
    pub top_share: f64,
    /// Number of latent clusters.
    pub clusters: usize,
    /// Successors per song in the Markov chain.
    pub successors: usize,
    /// Probability that the next song follows the chain.
    pub p_follow: f64,
    /// Probability that a playlist mixes in a second cluster.
    pub p_second: f64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            playlists: 4000,
            mean_len: 66.35,
            len_log_sd: 0.8,
            min_len: 5,
            max_len: 250,
            singleton_share: 0.475,
            top_share: 0.045,
            clusters: 20,
            successors: 4,
            p_follow: 0.6,
            p_second: 0.3,
            seed: 1,
        }
    }
}

impl SynthConfig {
    /// Rejects settings the construction cannot honour; the message names the field.
    pub fn check(&self) -> Result<(), RecsysError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(RecsysError::Invalid { field, value, reason })
        };
        if self.playlists < 50 {
            return bad("playlists", self.playlists.to_string(), "must be ≥ 50");
        }
        if !(self.min_len >= 2 && self.min_len < self.max_len) {
            return bad("min_len", self.min_len.to_string(), "must be ≥ 2 and < max_len");
        }
        if !(self.mean_len > self.min_len as f64 && self.mean_len < self.max_len as f64) {
            return bad("mean_len", self.mean_len.to_string(), "must lie strictly inside [min_len, max_len]");
        }
        if !(self.len_log_sd.is_finite() && self.len_log_sd > 0.0) {
            return bad("len_log_sd", self.len_log_sd.to_string(), "must be finite and > 0");
        }
        if !(self.singleton_share > 0.0 && self.singleton_share < 1.0) {
            return bad("singleton_share", self.singleton_share.to_string(), "must be in (0, 1)");
        }
        if !(self.top_share > 0.0 && self.top_share <= 1.0) {
            return bad("top_share", self.top_share.to_string(), "must be in (0, 1]");
        }
        if self.clusters == 0 || self.successors == 0 {
            return bad(
                "clusters/successors",
                format!("{}/{}", self.clusters, self.successors),
                "must be ≥ 1",
            );
        }
        for (field, p) in [("p_follow", self.p_follow), ("p_second", self.p_second)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, p.to_string(), "must be in [0, 1]");
            }
        }
        Ok(())
    }
}

/// A corpus: playlists of song ids `0..n_songs`, no repeats within a playlist.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Corpus {
    pub playlists: Vec<Vec<u32>>,
    /// Songs that occur at least once have ids below this.
    pub n_songs: usize,
}

/// Mean of a LogNormal(μ, s²) truncated to [a, b].
fn truncated_lognormal_mean(mu: f64, s: f64, a: f64, b: f64) -> f64 {
    let n = Normal::new(0.0, 1.0).expect("standard normal");
    let (la, lb) = (a.ln(), b.ln());
    let num = n.cdf((lb - mu - s * s) / s) - n.cdf((la - mu - s * s) / s);
    let den = n.cdf((lb - mu) / s) - n.cdf((la - mu) / s);
    (mu + s * s / 2.0).exp() * num / den
}

/// μ such that the truncated mean is `mean` (bisection; the mean increases with μ).
fn solve_mu(mean: f64, s: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (a.ln() - 5.0 * s, b.ln() + 5.0 * s);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if truncated_lognormal_mean(mid, s, a, b) < mean {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Exponent a with P(c = 1) = 1/Σ_{k ≤ c_max} k^{−a} equal to `share` (bisection on a ∈ (0, 20)).
fn solve_exponent(share: f64, c_max: usize) -> f64 {
    let p1 = |a: f64| 1.0 / (1..=c_max).map(|k| (k as f64).powf(-a)).sum::<f64>();
    let (mut lo, mut hi) = (0.0, 20.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if p1(mid) < share {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Draws from P(c = k) ∝ k^{−a}, k ∈ 1..=c_max, by inversion of the cumulative table.
struct CountSampler {
    cdf: Vec<f64>,
}

impl CountSampler {
    fn new(a: f64, c_max: usize) -> Self {
        let mut cdf = Vec::with_capacity(c_max);
        let mut acc = 0.0;
        for k in 1..=c_max {
            acc += (k as f64).powf(-a);
            cdf.push(acc);
        }
        let total = acc;
        cdf.iter_mut().for_each(|c| *c /= total);
        CountSampler { cdf }
    }
    fn sample(&self, rng: &mut ChaCha20Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1) + 1
    }
}

/// Generate the corpus of `cfg` (checked first).
pub fn generate(cfg: &SynthConfig) -> Result<Corpus, RecsysError> {
    cfg.check()?;
    let mut rng = stream(Some(cfg.seed), Stream::Data);
    // 1. Lengths.
    let (a, b) = (cfg.min_len as f64, cfg.max_len as f64);
    let mu = solve_mu(cfg.mean_len, cfg.len_log_sd, a - 0.5, b + 0.5);
    let ln = LogNormal::new(mu, cfg.len_log_sd).map_err(|_| RecsysError::Invalid {
        field: "len_log_sd",
        value: cfg.len_log_sd.to_string(),
        reason: "no log-normal with this spread",
    })?;
    let lens: Vec<usize> = (0..cfg.playlists)
        .map(|_| loop {
            let l = ln.sample(&mut rng).round();
            if l >= a && l <= b {
                break l as usize;
            }
        })
        .collect();
    let total: usize = lens.iter().sum();
    // 2. Counts, sorted so that id = popularity rank.
    let c_max = ((cfg.top_share * cfg.playlists as f64).ceil() as usize).max(1);
    let sampler = CountSampler::new(solve_exponent(cfg.singleton_share, c_max), c_max);
    let mut counts = vec![c_max];
    let mut sum = c_max;
    while sum < total {
        let c = sampler.sample(&mut rng);
        counts.push(c);
        sum += c;
    }
    counts[1..].sort_unstable_by(|x, y| y.cmp(x));
    let v = counts.len();
    // 3. Clusters, urns, successors.
    let k = cfg.clusters.min(v);
    let cluster: Vec<usize> = (0..v).map(|_| rng.random_range(0..k)).collect();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (s, c) in cluster.iter().enumerate() {
        members[*c].push(s as u32);
    }
    let mut urns: Vec<Vec<u32>> = members
        .iter()
        .map(|m| m.iter().flat_map(|s| std::iter::repeat_n(*s, counts[*s as usize])).collect())
        .collect();
    let successors: Vec<Vec<u32>> = (0..v)
        .map(|s| {
            let urn = &urns[cluster[s]];
            (0..cfg.successors)
                .map(|_| urn[rng.random_range(0..urn.len())])
                .filter(|t| *t as usize != s)
                .collect()
        })
        .collect();
    let mut left = counts.clone();
    let mut in_list = vec![false; v];
    let mut playlists = Vec::with_capacity(cfg.playlists);
    for &len in &lens {
        let sizes: Vec<usize> = urns.iter().map(Vec::len).collect();
        let pick = |rng: &mut ChaCha20Rng| -> Option<usize> {
            let tot: usize = sizes.iter().sum();
            if tot == 0 {
                return None;
            }
            let mut r = rng.random_range(0..tot);
            sizes.iter().position(|s| {
                if r < *s {
                    true
                } else {
                    r -= s;
                    false
                }
            })
        };
        let Some(primary) = pick(&mut rng) else { break };
        let secondary = if rng.random::<f64>() < cfg.p_second { pick(&mut rng) } else { None };
        let mut list: Vec<u32> = Vec::with_capacity(len);
        while list.len() < len {
            let mut next = None;
            if let Some(&prev) = list.last() {
                if rng.random::<f64>() < cfg.p_follow {
                    let mut succ = successors[prev as usize].clone();
                    succ.shuffle(&mut rng);
                    next = succ.into_iter().find(|t| left[*t as usize] > 0 && !in_list[*t as usize]);
                }
            }
            if next.is_none() {
                let mut c = match secondary {
                    Some(s) if rng.random::<f64>() >= 0.7 => s,
                    _ => primary,
                };
                if urns[c].is_empty() {
                    c = (0..k).max_by_key(|j| urns[*j].len()).expect("k ≥ 1");
                }
                // Draw from urn c: discard stale copies, retry songs already in the list.
                for _ in 0..32 {
                    if urns[c].is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..urns[c].len());
                    let s = urns[c][i];
                    if left[s as usize] == 0 {
                        urns[c].swap_remove(i);
                    } else if !in_list[s as usize] {
                        urns[c].swap_remove(i);
                        next = Some(s);
                        break;
                    }
                }
            }
            let Some(s) = next else { break };
            left[s as usize] -= 1;
            in_list[s as usize] = true;
            list.push(s);
        }
        for s in &list {
            in_list[*s as usize] = false;
        }
        // A playlist cut short by empty urns (only at the very end) is dropped with its songs.
        if list.len() >= cfg.min_len {
            playlists.push(list);
        }
    }
    Ok(relabel(playlists))
}

/// Relabel songs by realised popularity rank (0 = most frequent; ties by first id), dropping
/// songs that never occur.
fn relabel(playlists: Vec<Vec<u32>>) -> Corpus {
    let v = playlists.iter().flatten().map(|s| *s as usize + 1).max().unwrap_or(0);
    let mut cnt = vec![0usize; v];
    playlists.iter().flatten().for_each(|s| cnt[*s as usize] += 1);
    let mut order: Vec<usize> = (0..v).filter(|s| cnt[*s] > 0).collect();
    order.sort_by(|x, y| cnt[*y].cmp(&cnt[*x]).then(x.cmp(y)));
    let mut new_id = vec![u32::MAX; v];
    for (r, s) in order.iter().enumerate() {
        new_id[*s] = r as u32;
    }
    let playlists =
        playlists.into_iter().map(|p| p.into_iter().map(|s| new_id[s as usize]).collect()).collect();
    Corpus { playlists, n_songs: order.len() }
}

/// Occurrences of each song id in `playlists` (length `n_songs`).
pub fn song_counts(playlists: &[Vec<u32>], n_songs: usize) -> Vec<usize> {
    let mut c = vec![0usize; n_songs];
    for s in playlists.iter().flatten() {
        c[*s as usize] += 1;
    }
    c
}

/// The measured statistics of a corpus (those of recsys-notes.md §2.4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CorpusStats {
    pub playlists: usize,
    pub songs: usize,
    pub occurrences: usize,
    pub mean_len: f64,
    pub min_len: usize,
    pub max_len: usize,
    /// Share of songs (that occur) occurring exactly once.
    pub singleton_share: f64,
    /// Share of playlists holding the most frequent song.
    pub top_share: f64,
    pub mean_count: f64,
    /// Share of playlists with > 20 unique songs (test candidates).
    pub over_20_share: f64,
    /// Share of consecutive pairs (s, t) whose bigram occurs in ≥ 2 playlists: a proxy for
    /// next-song signal (0 for an order-free shuffle of rare songs).
    pub repeated_bigram_share: f64,
}

impl CorpusStats {
    pub fn of(c: &Corpus) -> CorpusStats {
        let counts = song_counts(&c.playlists, c.n_songs);
        let occ: usize = counts.iter().sum();
        let lens: Vec<usize> = c.playlists.iter().map(Vec::len).collect();
        let mut bigrams = std::collections::HashMap::<(u32, u32), usize>::new();
        for p in &c.playlists {
            for w in p.windows(2) {
                *bigrams.entry((w[0], w[1])).or_default() += 1;
            }
        }
        let pairs: usize = bigrams.values().sum();
        let repeated: usize = bigrams.values().filter(|n| **n >= 2).sum();
        let np = c.playlists.len().max(1) as f64;
        CorpusStats {
            playlists: c.playlists.len(),
            songs: c.n_songs,
            occurrences: occ,
            mean_len: occ as f64 / np,
            min_len: lens.iter().copied().min().unwrap_or(0),
            max_len: lens.iter().copied().max().unwrap_or(0),
            singleton_share: counts.iter().filter(|n| **n == 1).count() as f64 / c.n_songs.max(1) as f64,
            top_share: counts.iter().copied().max().unwrap_or(0) as f64 / np,
            mean_count: occ as f64 / c.n_songs.max(1) as f64,
            over_20_share: lens.iter().filter(|l| **l > 20).count() as f64 / np,
            repeated_bigram_share: repeated as f64 / pairs.max(1) as f64,
        }
    }
}

/// A calibrated statistic: name, MPD value, accepted range.
pub struct Target {
    pub name: &'static str,
    pub mpd: &'static str,
    pub lo: f64,
    pub hi: f64,
}

/// The targets a generated corpus must meet (recsys-notes.md §2.1, §2.4).
pub const TARGETS: [Target; 5] = [
    Target { name: "singleton_share", mpd: "≈ 0.45–0.50 (\"nearly half\")", lo: 0.45, hi: 0.50 },
    Target { name: "top_share", mpd: "≈ 0.045 (45,394 / 1M)", lo: 0.04, hi: 0.05 },
    Target { name: "mean_len", mpd: "66.35", lo: 62.0, hi: 70.0 },
    Target { name: "min_len", mpd: "5", lo: 5.0, hi: 5.0 },
    Target { name: "max_len", mpd: "250", lo: 100.0, hi: 250.0 },
];

impl CorpusStats {
    /// The value of a [`TARGETS`] statistic by name.
    pub fn value(&self, name: &str) -> Option<f64> {
        Some(match name {
            "singleton_share" => self.singleton_share,
            "top_share" => self.top_share,
            "mean_len" => self.mean_len,
            "min_len" => self.min_len as f64,
            "max_len" => self.max_len as f64,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_mean_solver_hits_its_target() {
        let mu = solve_mu(66.35, 0.8, 4.5, 250.5);
        assert!((truncated_lognormal_mean(mu, 0.8, 4.5, 250.5) - 66.35).abs() < 1e-6);
        // Without effective truncation the mean is e^{μ+s²/2}.
        let m = truncated_lognormal_mean(1.0, 0.1, 1e-9, 1e9);
        assert!((m - (1.0f64 + 0.005).exp()).abs() < 1e-9);
    }

    #[test]
    fn exponent_solver_gives_the_singleton_probability() {
        let a = solve_exponent(0.475, 180);
        let p1 = 1.0 / (1..=180).map(|k| (k as f64).powf(-a)).sum::<f64>();
        assert!((p1 - 0.475).abs() < 1e-9);
    }

    #[test]
    fn small_corpus_is_deterministic_and_has_no_repeats() {
        let cfg = SynthConfig { playlists: 300, ..SynthConfig::default() };
        let a = generate(&cfg).unwrap();
        assert_eq!(a, generate(&cfg).unwrap());
        assert_ne!(a, generate(&SynthConfig { seed: 2, ..cfg.clone() }).unwrap());
        for p in &a.playlists {
            let mut q = p.clone();
            q.sort_unstable();
            q.dedup();
            assert_eq!(q.len(), p.len(), "a song repeats within a playlist");
            assert!(p.iter().all(|s| (*s as usize) < a.n_songs));
        }
        let counts = song_counts(&a.playlists, a.n_songs);
        assert!(counts.iter().all(|c| *c > 0));
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "ids are popularity ranks");
    }

    #[test]
    fn default_corpus_meets_every_calibrated_target() {
        let c = generate(&SynthConfig::default()).unwrap();
        let st = CorpusStats::of(&c);
        for t in &TARGETS {
            let v = st.value(t.name).unwrap();
            assert!(v >= t.lo && v <= t.hi, "{} = {v} outside [{}, {}] (MPD {})", t.name, t.lo, t.hi, t.mpd);
        }
        // Test candidates (> 20 songs) are plentiful and the order carries signal.
        assert!(st.over_20_share > 0.5, "{st:?}");
        assert!(st.repeated_bigram_share > 0.2, "{st:?}");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = generate(&SynthConfig { top_share: 1.5, ..SynthConfig::default() }).unwrap_err();
        assert!(e.to_string().contains("top_share"), "{e}");
        let e = generate(&SynthConfig { playlists: 3, ..SynthConfig::default() }).unwrap_err();
        assert!(e.to_string().contains("playlists"), "{e}");
    }
}
