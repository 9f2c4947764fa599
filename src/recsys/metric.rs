//! The paper's test protocol and success measures (recsys-notes.md §1.5, §4). Pure Rust.
//!
//! A test playlist with > 20 songs in seed group g ∈ {1..10} shows its first g songs; its
//! held-out set G_i is the rest, R_i = |G_i|. The model ranks every song not in the seed; the
//! target s* counts as recommended when it is among the first R_i (`EV.compute_single_signal_rec_in_holdouts`).
//!
//! Amplification (recsys-notes.md §4.2, the paper's normalisers):
//! A = (S / Σ_i R_i) / (k / N_train), S = #test playlists with s* in the top-R_i, k = training
//! occurrences of s* (= the budget), N_train = song occurrences in training. A = 1: s* is
//! recommended exactly as often as its training share.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Seed size of test playlist `index` of `n_test`: the paper's ⌊index / (n_test/10)⌋ + 1.
pub fn seed_size(index: usize, n_test: usize) -> usize {
    (index * 10 / n_test.max(1)) + 1
}

/// Quality of one ranked list against its held-out songs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListQuality {
    /// |L[..R] ∩ G| / R (R-precision without the artist term).
    pub r_precision: f64,
    /// DCG / IDCG over the whole list, gains 1/log₂(rank + 1) with ranks from 1.
    pub ndcg: f64,
}

/// R-precision and NDCG of ranked `list` for held-out set `held` (R = |held|).
pub fn list_quality(list: &[u32], held: &std::collections::HashSet<u32>) -> ListQuality {
    let r = held.len();
    if r == 0 {
        return ListQuality { r_precision: 0.0, ndcg: 0.0 };
    }
    let top = list.iter().take(r).filter(|s| held.contains(s)).count();
    let gain = |k: usize| 1.0 / ((k + 2) as f64).log2();
    let dcg: f64 = list.iter().enumerate().filter(|(_, s)| held.contains(s)).map(|(k, _)| gain(k)).sum();
    let idcg: f64 = (0..r.min(list.len())).map(gain).sum();
    ListQuality { r_precision: top as f64 / r as f64, ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 } }
}

/// Whether `target` is among the first `r` of `list`.
pub fn hit(list: &[u32], target: u32, r: usize) -> bool {
    list.iter().take(r).any(|s| *s == target)
}

/// A = (hits / Σ R_i) / (k / N_train); NaN when k or Σ R_i is 0.
pub fn amplification(hits: usize, sum_r: usize, k: usize, n_train: usize) -> f64 {
    if k == 0 || sum_r == 0 || n_train == 0 {
        return f64::NAN;
    }
    (hits as f64 / sum_r as f64) / (k as f64 / n_train as f64)
}

/// Mean and two-sided (1 − α) Student-t interval over seeds; `(mean, mean, mean)` for one value,
/// `None` when empty or when a value is not finite.
pub fn t_interval(xs: &[f64], alpha: f64) -> Option<(f64, f64, f64)> {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return Some((m, m, m));
    }
    let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let t = StudentsT::new(0.0, 1.0, n - 1.0).ok()?.inverse_cdf(1.0 - alpha / 2.0);
    let h = t * sd / n.sqrt();
    Some((m, m - h, m + h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn seed_groups_run_from_one_to_ten() {
        let g: Vec<usize> = (0..20).map(|i| seed_size(i, 20)).collect();
        assert_eq!(g[0], 1);
        assert_eq!(g[1], 1);
        assert_eq!(g[2], 2);
        assert_eq!(g[19], 10);
    }

    #[test]
    fn quality_and_hits_by_hand() {
        let held: HashSet<u32> = [1, 2].into_iter().collect();
        // List [1, 9, 2]: R = 2, top-2 holds {1}: R-precision 1/2.
        // DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
        let q = list_quality(&[1, 9, 2], &held);
        assert!((q.r_precision - 0.5).abs() < 1e-12);
        assert!((q.ndcg - 1.5 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        assert!(hit(&[5, 7, 3], 7, 2) && !hit(&[5, 7, 3], 3, 2));
    }

    #[test]
    fn amplification_is_one_for_proportional_recommendation() {
        // k = 10 of 10,000 training occurrences; 5 hits in Σ R = 5,000 slots: the same share.
        assert!((amplification(5, 5000, 10, 10_000) - 1.0).abs() < 1e-12);
        assert!((amplification(50, 5000, 10, 10_000) - 10.0).abs() < 1e-12);
        assert!(amplification(1, 10, 0, 10).is_nan());
    }

    #[test]
    fn t_interval_by_hand() {
        // mean 2, sd 1, n = 3: half-width t_{2, 0.975} / √3 = 4.302653 / 1.732051.
        let (m, lo, hi) = t_interval(&[1.0, 2.0, 3.0], 0.05).unwrap();
        assert!((m - 2.0).abs() < 1e-12);
        assert!((hi - m - 4.302652729911275 / 3f64.sqrt()).abs() < 1e-6);
        assert!((m - lo - (hi - m)).abs() < 1e-12);
        assert_eq!(t_interval(&[4.0], 0.05), Some((4.0, 4.0, 4.0)));
        assert_eq!(t_interval(&[], 0.05), None);
    }
}
