//! Property tests: every bound lies in [0, 1]; lower bounds rise with α and fall with σ; the
//! ceiling falls as ε falls and rises with k; critical mass is the smallest α reaching the target.

use crowdout::bounds::ceiling::{ceiling_from_profile, ceiling_gdp, ceiling_generic, Adjacency};
use crowdout::bounds::critical_mass_by_bisection;
use crowdout::bounds::dpsgd::{convex_dpsgd_bound, ConvexDpsgdInputs, ConvexModel, Reference};
use crowdout::bounds::hardt::{hardt_bound, hardt_critical_mass, Suboptimality};
use crowdout::bounds::multi::{noise_bound, CoordinationNoise};
use proptest::prelude::*;

fn sub() -> impl Strategy<Value = Suboptimality> {
    prop_oneof![
        Just(Suboptimality::None),
        (0.0..0.05f64).prop_map(Suboptimality::TotalVariation),
        (0.0..0.2f64).prop_map(Suboptimality::Absolute)
    ]
}

proptest! {
    #[test]
    fn hardt_in_unit_interval_and_rises_with_alpha(a1 in 1e-4..1.0f64, a2 in 1e-4..1.0f64, d in 0.0..1.0f64, x in 0.0..1.0f64, s in sub()) {
        let (lo, hi) = if a1 <= a2 { (a1, a2) } else { (a2, a1) };
        let b1 = hardt_bound(lo, d, x, s).unwrap().value;
        let b2 = hardt_bound(hi, d, x, s).unwrap().value;
        prop_assert!((0.0..=1.0).contains(&b1) && (0.0..=1.0).contains(&b2));
        prop_assert!(b2 >= b1 - 1e-12);
    }

    #[test]
    fn hardt_critical_mass_matches_bisection(t in 0.05..0.999f64, d in 0.0..1.0f64, x in 0.0..1.0f64, s in sub()) {
        let closed = hardt_critical_mass(t, d, x, s).unwrap();
        let bis = critical_mass_by_bisection(t, 1e-10, &|a| Ok(hardt_bound(a, d, x, s)?.value)).unwrap();
        match (closed, bis) {
            (None, None) => {}
            (Some(c), Some(b)) => {
                prop_assert!((c - b).abs() < 1e-7 || (c == 0.0 && b < 1e-7), "closed {c} bisection {b}");
                // Smallest: at α* the bound reaches the target, just below it does not.
                if c > 1e-6 {
                    prop_assert!(hardt_bound(c, d, x, s).unwrap().value >= t - 1e-9);
                    prop_assert!(hardt_bound(c * (1.0 - 1e-6), d, x, s).unwrap().value < t);
                }
            }
            other => prop_assert!(false, "closed form and bisection disagree: {other:?}"),
        }
    }

    #[test]
    fn noise_bound_in_unit_interval_rises_with_alpha_falls_with_noise(
        a1 in 1e-3..1.0f64, a2 in 1e-3..1.0f64, nl in 0.0..0.4f64, nt in 0.0..0.4f64, w in 0.0..1.0f64, d in 0.0..1.0f64, x in 0.0..0.5f64, extra in 0.0..0.1f64,
    ) {
        let (lo, hi) = if a1 <= a2 { (a1, a2) } else { (a2, a1) };
        let n = CoordinationNoise { alpha: lo, nu_wrong_label: nl, nu_wrong_trigger: nt, wrong_label_overlap: w, delta_gap: d, xi: x };
        let b1 = noise_bound(&n, Suboptimality::None).unwrap().value;
        let b2 = noise_bound(&CoordinationNoise { alpha: hi, ..n }, Suboptimality::None).unwrap().value;
        prop_assert!((0.0..=1.0).contains(&b1) && b2 >= b1 - 1e-12);
        let b3 = noise_bound(&CoordinationNoise { nu_wrong_label: nl + extra, ..n }, Suboptimality::None).unwrap().value;
        prop_assert!(b3 <= b1 + 1e-12);
    }

    #[test]
    fn dpsgd_bound_in_unit_interval_and_falls_with_sigma(
        margins in proptest::collection::vec(-1.0..3.0f64, 1..30), s1 in 0.0..5.0f64, s2 in 0.0..5.0f64, q in 0.01..1.0f64, steps in 0u64..500,
    ) {
        let norms: Vec<f64> = margins.iter().enumerate().map(|(i, _)| 1.0 + (i % 3) as f64).collect();
        let (lo, hi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
        let mk = |sigma: f64| ConvexDpsgdInputs {
            model: ConvexModel::Softmax { classes: 2 }, reference: Reference::ClippedMinimiser,
            theta_hat_margins: &margins, x_norms: &norms, theta0_dist: 1.0, theta_hat_error: 0.0,
            lambda: 0.1, lr: 0.5, steps, sigma, clip: 1.0, expected_batch: 1000.0 * q, q, dim: 10, beta: 0.05, smoothness: 1.0,
        };
        let b_lo = convex_dpsgd_bound(&mk(lo)).unwrap().value;
        let b_hi = convex_dpsgd_bound(&mk(hi)).unwrap().value;
        prop_assert!((0.0..=1.0).contains(&b_lo) && (0.0..=1.0).contains(&b_hi));
        prop_assert!(b_hi <= b_lo);
    }

    #[test]
    fn ceiling_falls_with_epsilon_rises_with_k(
        s0 in 0.0..1.0f64, e1 in 0.0..3.0f64, e2 in 0.0..3.0f64, delta in 0.0..1e-3f64, k1 in 0u64..50, k2 in 0u64..50, replace in any::<bool>(),
    ) {
        let adj = if replace { Adjacency::ReplaceOne } else { Adjacency::AddRemove };
        let (elo, ehi) = if e1 <= e2 { (e1, e2) } else { (e2, e1) };
        let (klo, khi) = if k1 <= k2 { (k1, k2) } else { (k2, k1) };
        let c_lo = ceiling_generic(s0, elo, delta, klo, adj).unwrap().value;
        let c_hi_e = ceiling_generic(s0, ehi, delta, klo, adj).unwrap().value;
        let c_hi_k = ceiling_generic(s0, elo, delta, khi, adj).unwrap().value;
        prop_assert!((0.0..=1.0).contains(&c_lo));
        prop_assert!(c_lo >= s0 - 1e-12, "a ceiling is never below the no-collective rate");
        prop_assert!(c_hi_e >= c_lo - 1e-12);
        prop_assert!(c_hi_k >= c_lo - 1e-12);
        // GDP variant likewise.
        let g1 = ceiling_gdp(s0, elo, 2 * klo).unwrap().value;
        let g2 = ceiling_gdp(s0, ehi, 2 * khi).unwrap().value;
        prop_assert!((0.0..=1.0).contains(&g1) && g2 >= g1 - 1e-12);
    }

    #[test]
    fn profile_ceiling_is_min_over_points(s0 in 0.0..1.0f64, pts in proptest::collection::vec((0.0..5.0f64, 0.0..0.2f64), 1..8)) {
        let all = ceiling_from_profile(s0, &pts).unwrap().value;
        for p in &pts {
            prop_assert!(all <= ceiling_from_profile(s0, &[*p]).unwrap().value + 1e-15);
        }
        prop_assert!((0.0..=1.0).contains(&all));
    }
}

mod second_moment {
    use crowdout::bounds::dpsgd::ConvexModel;
    use crowdout::bounds::moment::{moment_bound, MomentInputs};
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn bound(
        m: &[f64],
        x: &[f64],
        sigma: f64,
        lambda: f64,
        lr_frac: f64,
        steps: u64,
        q: f64,
        d0: f64,
    ) -> (f64, f64, f64) {
        let smooth = 2.0;
        let n = 1000.0;
        let b = moment_bound(&MomentInputs {
            model: ConvexModel::Softmax { classes: 2 },
            margins: m,
            x_norms: x,
            theta0_dist: d0,
            theta_hat_error: 1e-4,
            lambda,
            lr: lr_frac * 2.0 / (smooth + 2.0 * lambda),
            steps,
            sigma,
            clip: 1.0,
            expected_batch: q * n,
            q,
            dim: 20,
            clipped_grad_sq_sum: n,
            smoothness: smooth,
            beta: 0.05,
        })
        .unwrap();
        (b.mean.value, b.high_prob.value, b.reference_success)
    }

    proptest! {
        /// Both bounds lie in [0, 1], the per-run one (probability 1 − β) never exceeds the one on
        /// E[S] by much (it can: they are different statements, but here V/β ≥ V), neither exceeds
        /// the reference's own success, and both fall (weakly) as σ grows.
        #[test]
        fn in_unit_interval_below_reference_and_monotone_in_sigma(
            m in proptest::collection::vec(-1.0..3.0f64, 1..30),
            s1 in 0.0..10.0f64, s2 in 0.0..10.0f64,
            lambda in 0.01..1.0f64, lr_frac in 0.01..1.0f64, steps in 0u64..5000, q in 0.001..1.0f64, d0 in 0.0..10.0f64,
        ) {
            let x = vec![1.5; m.len()];
            let (lo, hi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
            let (e1, h1, r) = bound(&m, &x, lo, lambda, lr_frac, steps, q, d0);
            let (e2, h2, _) = bound(&m, &x, hi, lambda, lr_frac, steps, q, d0);
            for v in [e1, h1, e2, h2] {
                prop_assert!((0.0..=1.0).contains(&v));
                prop_assert!(v <= r + 1e-12, "bound {v} above the reference success {r}");
            }
            prop_assert!(h1 <= e1 + 1e-12 || h1 == 0.0 || e1 > 0.0);
            prop_assert!(e2 <= e1 + 1e-12 && h2 <= h1 + 1e-12, "not monotone in σ: {e1} -> {e2}, {h1} -> {h2}");
        }

        /// Larger margins (a bigger collective pushes the reference further) never lower the bound.
        #[test]
        fn monotone_in_margins(m in proptest::collection::vec(-1.0..3.0f64, 1..30), bump in 0.0..2.0f64, sigma in 0.0..5.0f64) {
            let x = vec![1.0; m.len()];
            let up: Vec<f64> = m.iter().map(|v| v + bump).collect();
            let (e1, h1, _) = bound(&m, &x, sigma, 0.1, 0.5, 2000, 0.05, 1.0);
            let (e2, h2, _) = bound(&up, &x, sigma, 0.1, 0.5, 2000, 0.05, 1.0);
            prop_assert!(e2 >= e1 - 1e-12 && h2 >= h1 - 1e-12);
        }
    }
}
