//! The accountant against the reference vectors in `tests/testvectors/` (copied from the
//! project's shared `testvectors/`, produced with Opacus 1.6.0, dp-accounting 0.6.0 and
//! prv-accountant 0.2.0; see `tests/testvectors/README.md` for columns and tolerances), and
//! against opendp's zCDP maps for full-batch (q = 1) DP-SGD.

use std::collections::HashMap;
use std::path::PathBuf;

use crowdout::accountant::{self, gdp, rdp, Method, Phase};
use rayon::prelude::*;

type Row = HashMap<String, String>;

fn read(name: &str) -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testvectors").join(name);
    let mut rdr = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            headers.iter().zip(r.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
        })
        .collect()
}

fn f(row: &Row, col: &str) -> Option<f64> {
    let v = row.get(col).unwrap_or_else(|| panic!("missing column {col}"));
    if v.is_empty() {
        None
    } else {
        Some(v.parse::<f64>().unwrap_or_else(|e| panic!("column {col} value {v}: {e}")))
    }
}

fn phase(row: &Row) -> (Phase, f64) {
    let p = Phase { q: f(row, "q").unwrap(), sigma: f(row, "sigma").unwrap(), steps: f(row, "steps").unwrap() as u64 };
    (p, f(row, "delta").unwrap())
}

#[test]
fn rdp_epsilon_and_order_match_opacus_on_every_row() {
    let rows = read("accountant.csv");
    assert_eq!(rows.len(), 360);
    let mut worst = 0.0_f64;
    for row in &rows {
        let (p, delta) = phase(row);
        let rep = accountant::epsilon(Method::Rdp, &[p], delta).unwrap();
        let want = f(row, "eps_rdp_opacus").unwrap();
        let rel = ((rep.epsilon - want) / want).abs();
        worst = worst.max(rel);
        assert!(rel < 1e-6, "{p:?} δ={delta}: ε {} vs Opacus {want} (rel {rel:e})", rep.epsilon);
        let order = f(row, "opt_order_opacus").unwrap();
        let got = rep.optimal_order.unwrap();
        assert!((got - order).abs() < 1e-9, "{p:?} δ={delta}: order {got} vs Opacus {order}");
    }
    eprintln!("RDP vs Opacus: worst relative difference {worst:e}");
}

#[test]
fn log_a_matches_high_precision_reference() {
    let rows = read("rdp_log_a.csv");
    let mut worst = 0.0_f64;
    for row in &rows {
        let (q, s, a) = (f(row, "q").unwrap(), f(row, "sigma").unwrap(), f(row, "alpha").unwrap());
        let got = rdp::log_a(q, s, a);
        let want = f(row, "log_a_ref").unwrap();
        let rel = ((got - want) / want).abs();
        worst = worst.max(rel);
        // Opacus's own maximum error against this reference is 3.1e-7.
        assert!(rel < 1e-6, "q={q} σ={s} α={a}: log A {got} vs reference {want} (rel {rel:e})");
    }
    eprintln!("log A vs reference: worst relative difference {worst:e}");
}

#[test]
fn heterogeneous_two_phase_example() {
    let rows = read("heterogeneous.csv");
    let orders: Vec<f64> = rows.iter().map(|r| f(r, "order").unwrap()).collect();
    let g1 = Phase { q: 1e-5, sigma: 1.0, steps: 10 };
    let g2 = Phase { q: 1e-4, sigma: 3.0, steps: 4 };
    let c1 = rdp::rdp_phases(&[g1], &orders);
    let c2 = rdp::rdp_phases(&[g2], &orders);
    for (i, row) in rows.iter().enumerate() {
        for (got, col) in [(c1[i], "rdp_g1_q1e-5_s1_T10"), (c2[i], "rdp_g2_q1e-4_s3_T4")] {
            let want = f(row, col).unwrap();
            assert!(((got - want) / want).abs() < 1e-9, "order {}: {col} {got} vs {want}", orders[i]);
        }
    }
    let rep = accountant::epsilon_rdp(&[g1, g2], 1e-5, &orders).unwrap();
    assert!((rep.epsilon - 0.33634406339259565).abs() < 1e-12, "ε = {}", rep.epsilon);
    assert_eq!(rep.optimal_order, Some(23.0));
    // PLD of the same two phases can only be tighter than RDP.
    let pld = accountant::epsilon(Method::Pld, &[g1, g2], 1e-5).unwrap();
    assert!(pld.epsilon <= rep.epsilon, "PLD {} > RDP {}", pld.epsilon, rep.epsilon);
}

#[test]
fn pld_epsilon_matches_dp_accounting_and_bounds_on_every_row() {
    let rows = read("accountant.csv");
    let failures: Vec<String> = rows
        .par_iter()
        .filter_map(|row| {
            let (p, delta) = phase(row);
            let pld = f(row, "eps_pld");
            let exact = f(row, "eps_exact_q1");
            if pld.is_none() && exact.is_none() {
                return None;
            }
            let got = accountant::epsilon(Method::Pld, &[p], delta).unwrap().epsilon;
            let mut errs = Vec::new();
            if let Some(want) = pld {
                let tol = (1e-3 * want).max(0.01);
                if (got - want).abs() > tol {
                    errs.push(format!("ε {got} vs dp_accounting {want} (tol {tol})"));
                }
            }
            if let Some(low) = f(row, "eps_prv_low") {
                if got < low {
                    errs.push(format!("ε {got} below the PRV lower bound {low}"));
                }
            }
            if let Some(ex) = exact {
                if got < ex * (1.0 - 1e-12) {
                    errs.push(format!("ε {got} below the exact ε {ex}"));
                }
                if got > ex * (1.0 + 1e-3) + 1e-3 {
                    errs.push(format!("ε {got} too far above the exact ε {ex}"));
                }
            }
            let rdp = f(row, "eps_rdp_opacus").unwrap();
            if got > rdp {
                errs.push(format!("ε {got} above RDP {rdp}"));
            }
            (!errs.is_empty()).then(|| format!("{p:?} δ={delta}: {}", errs.join("; ")))
        })
        .collect();
    assert!(failures.is_empty(), "{} rows fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn gdp_matches_opacus_clt() {
    for row in read("accountant.csv") {
        let Some(want) = f(&row, "eps_gdp_clt") else { continue };
        let (p, delta) = phase(&row);
        let mu = accountant::gdp_mu(p.q, p.sigma, p.steps);
        let got = gdp::gdp_epsilon(mu, delta);
        assert!((got - want).abs() <= 1e-6 * want.max(1e-3), "{p:?}: GDP ε {got} vs Opacus {want}");
    }
}

#[test]
fn noise_multiplier_search_reproduces_opacus() {
    let rows = read("noise_multiplier.csv");
    let results: Vec<String> = rows
        .par_iter()
        .filter_map(|row| {
            let target = f(row, "target_eps").unwrap();
            let delta = f(row, "delta").unwrap();
            let q = f(row, "sample_rate").unwrap();
            let epochs = f(row, "epochs").unwrap();
            let steps = accountant::steps_for_epochs(q, epochs);
            assert_eq!(steps, f(row, "steps").unwrap() as u64, "steps for q={q}, E={epochs}");
            let mut errs = Vec::new();
            let s_rdp = accountant::calibrate_sigma(Method::Rdp, target, delta, q, steps).unwrap();
            let want = f(row, "sigma_rdp").unwrap();
            if (s_rdp - want).abs() > 0.01 {
                errs.push(format!("RDP σ {s_rdp} vs Opacus {want}"));
            }
            let s_pld = accountant::calibrate_sigma(Method::Pld, target, delta, q, steps).unwrap();
            let want = f(row, "sigma_prv").unwrap();
            if (s_pld - want).abs() > 0.05 {
                errs.push(format!("PLD σ {s_pld} vs Opacus PRV {want}"));
            }
            let e = accountant::epsilon(Method::Pld, &[Phase { q, sigma: s_pld, steps }], delta).unwrap().epsilon;
            if !(e <= target && target - e <= 0.01) {
                errs.push(format!("PLD ε at calibrated σ is {e}, target {target}"));
            }
            (!errs.is_empty()).then(|| format!("target {target} q={q} E={epochs}: {}", errs.join("; ")))
        })
        .collect();
    assert!(results.is_empty(), "{}", results.join("\n"));
}
