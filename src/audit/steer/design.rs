//! The sequential design: where the next batch of trainings goes, and when to stop.
//!
//! Per privacy arm, after the initial design (`init` α's log-spaced over [α_lo, α_hi], `init_seeds`
//! runs each), every round fits the curves of [`super::fit`] to all runs so far and proposes, in
//! order: the current estimates (α₅₀, then α*(S*) for each target), then the finite ends of
//! their 95 % intervals, widest interval first; each clamped into [α_lo, α_hi] and rounded to
//! three significant digits. Those are the points where the profile likelihood of the crossing
//! is most sensitive: runs at the estimate sharpen the slope and the location, runs at an
//! interval end are the ones that can exclude it (a locally optimal design for the crossing of a
//! logistic curve puts its mass around the crossing; Wu 1985, "Efficient sequential designs with
//! binary data", JASA 80:974). The first `batch` distinct proposals are run.
//!
//! Stop when the arm has used `max_cells` runs, or when every reported interval is closed with
//! `hi / lo ≤ max_width_ratio`.

use super::fit::Crossing;

/// α rounded to three significant digits, as the double nearest that decimal (through its
/// decimal text, so the value is the same however it was computed or read back: stable cell
/// hashes and readable tables). Idempotent.
pub fn round_alpha(a: f64) -> f64 {
    if !(a.is_finite() && a > 0.0) {
        return a;
    }
    format!("{a:.2e}").parse().unwrap_or(a)
}

/// The initial design: `n` α's log-spaced over `[lo, hi]` (ends included), rounded.
pub fn initial_alphas(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![round_alpha((lo * hi).sqrt())],
        _ => (0..n)
            .map(|i| round_alpha((lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp()))
            .collect(),
    }
}

/// The next batch of α's (at most `batch`, distinct) from the current fits; see the module docs.
/// `fits` are the arm's crossings (α₅₀ first); a fit that failed is left out by the caller.
pub fn next_alphas(fits: &[Crossing], lo: f64, hi: f64, batch: usize) -> Vec<f64> {
    let clamp = |a: f64| round_alpha(a.clamp(lo, hi));
    let mut proposals: Vec<f64> = fits.iter().map(|c| clamp(c.alpha)).collect();
    let mut by_width: Vec<&Crossing> = fits.iter().collect();
    by_width.sort_by(|a, b| b.width_ratio().total_cmp(&a.width_ratio()));
    for c in by_width {
        if c.lo > 0.0 {
            proposals.push(clamp(c.lo));
        }
        if c.hi.is_finite() {
            proposals.push(clamp(c.hi));
        }
    }
    let mut out: Vec<f64> = Vec::new();
    for a in proposals {
        if out.len() == batch {
            break;
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Whether every crossing's interval is closed and at most `max_width_ratio` wide (hi / lo).
pub fn narrow_enough(fits: &[Crossing], max_width_ratio: f64) -> bool {
    !fits.is_empty() && fits.iter().all(|c| c.width_ratio() <= max_width_ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crossing(level: f64, alpha: f64, lo: f64, hi: f64) -> Crossing {
        Crossing { level, alpha, lo, hi, slope: 1.0, n: 8 }
    }

    #[test]
    fn rounding_keeps_three_digits() {
        assert_eq!(round_alpha(0.0123456), 0.0123);
        assert_eq!(round_alpha(0.1), 0.1);
        assert_eq!(round_alpha(0.0004999), 0.0005);
        assert_eq!(round_alpha(0.0052 + 1e-18), 0.0052);
        assert_eq!(round_alpha(512.0 * 1e-5), 0.00512);
        assert_eq!(round_alpha(0.005199999), 0.0052);
        let a = round_alpha(0.00951234);
        assert_eq!((a, round_alpha(a)), (0.00951, 0.00951));
    }

    #[test]
    fn initial_design_spans_the_range() {
        let a = initial_alphas(0.01, 0.16, 5);
        assert_eq!(a, vec![0.01, 0.02, 0.04, 0.08, 0.16]);
        assert_eq!(initial_alphas(0.01, 0.04, 1), vec![0.02]);
    }

    #[test]
    fn estimates_first_then_ends_of_the_widest_interval() {
        let fits = [crossing(0.5, 0.05, 0.03, 0.08), crossing(0.9, 0.1, 0.02, 0.4)];
        let next = next_alphas(&fits, 0.01, 0.3, 4);
        // the two estimates, then the widest interval's ends (0.02, 0.4 clamped to 0.3)
        assert_eq!(next, vec![0.05, 0.1, 0.02, 0.3]);
        // duplicates collapse; open ends are skipped
        let fits = [crossing(0.5, 0.05, 0.0, f64::INFINITY), crossing(0.9, 0.05, 0.04, f64::INFINITY)];
        assert_eq!(next_alphas(&fits, 0.01, 0.3, 4), vec![0.05, 0.04]);
    }

    #[test]
    fn stops_only_when_every_interval_is_closed_and_narrow() {
        let narrow = crossing(0.5, 0.05, 0.04, 0.06);
        assert!(narrow_enough(&[narrow], 2.0));
        assert!(!narrow_enough(&[narrow, crossing(0.9, 0.1, 0.05, f64::INFINITY)], 2.0));
        assert!(!narrow_enough(&[], 2.0));
    }
}
