//! `build_report` on a small results CSV with a clip-only arm and two DP levels writes
//! `prediction.csv` and `prediction.md`: k is fitted on the larger-ε arm and recovered when the
//! DP successes follow the model exactly; the held-out arm is predicted; non-DP rows get nothing.

use std::collections::HashMap;

use crowdout::bounds::prediction::{CellInput, DeepNoiseModel, NoiseSchedule};
use crowdout::report::build_report;
use crowdout::report::prediction::predictor;
use crowdout::sweep::merge::{merge_files, write_results};
use crowdout::sweep::store::ResultRow;

fn template() -> ResultRow {
    let header = ResultRow::header();
    let vals: Vec<&str> = header
        .iter()
        .map(|c| match c.as_str() {
            "sweep" => "small",
            "dataset" => "mnist",
            "model" => "cnn",
            "collective_name" => "patch",
            "collective" => "trigger=patch:size=3",
            "epochs" => "4",
            "batch_size" => "256",
            "lr" => "0.5",
            "optimizer" => "sgd",
            "momentum" | "alpha" | "seed" | "weight_decay" => "0",
            "clipping" => "flat",
            "grad_mode" => "exact",
            "accountant" => "rdp",
            "delta" => "0.00001",
            "q" => "0.032",
            "steps" => "125",
            "schema_version" => "2",
            "lr_schedule" => "constant",
            "input_norm" => "none",
            _ => "",
        })
        .collect();
    let text = format!("{}\n{}\n", header.join(","), vals.join(","));
    csv::Reader::from_reader(text.as_bytes()).deserialize().next().unwrap().unwrap()
}

fn row(
    privacy: &str,
    sigma: Option<f64>,
    clip: Option<f64>,
    alpha: f64,
    seed: u64,
    success: f64,
    baseline: f64,
) -> ResultRow {
    let mut r = template();
    r.privacy = privacy.into();
    r.sigma = sigma;
    r.clip = clip;
    r.alpha = alpha;
    r.seed = seed;
    r.success = Some(success);
    r.baseline_success = Some(baseline);
    r.config_hash = format!("{privacy}|{clip:?}|{alpha}|{seed}");
    r
}

#[test]
fn report_writes_prediction_files() {
    let k = 4.0;
    let model = DeepNoiseModel::new(k).unwrap();
    let s0 = 0.02;
    let mut rows = Vec::new();
    for seed in 0..2u64 {
        for &clip in &[1.0, 5.0, 10.0] {
            for &alpha in &[0.0, 0.05, 0.15, 0.3] {
                let clip_only =
                    if alpha == 0.0 { s0 } else { (0.1 + 2.5 * alpha + 0.05 * seed as f64).min(0.99) };
                rows.push(row("none", None, None, alpha, seed, clip_only.max(0.1), s0));
                rows.push(row("sigma=0", Some(0.0), Some(clip), alpha, seed, clip_only, s0));
                for (arm, sigma) in [("eps=8", 0.66), ("eps=2", 1.19)] {
                    let input = CellInput {
                        noise: NoiseSchedule {
                            lr: 0.5,
                            momentum: 0.0,
                            sigma,
                            clip,
                            expected_batch: 256.0,
                            steps: 125,
                            lambda_eff: 0.0,
                        },
                        clip_only_success: clip_only,
                        baseline: s0,
                    };
                    let s = if alpha == 0.0 { s0 } else { model.predict(&input).unwrap().value };
                    rows.push(row(arm, Some(sigma), Some(clip), alpha, seed, s, s0));
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let csv_in = dir.path().join("results.csv");
    write_results(&csv_in, &rows).unwrap();
    let out = dir.path().join("rep");
    build_report(std::slice::from_ref(&csv_in), &out, 0.9, false).unwrap();

    let md = std::fs::read_to_string(out.join("prediction.md")).unwrap();
    assert!(md.contains("never a guarantee"), "{md}");
    assert!(md.contains("## mnist / cnn / patch"), "{md}");
    assert!(md.contains("Calibrated on `eps=8` (18 cells): **k = 4.0000**"), "{md}");
    assert!(md.contains("Held-out MAE: 0.000 over 18 cells"), "{md}");

    let text = std::fs::read_to_string(out.join("prediction.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let head: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    for col in ["config_hash", "privacy", "alpha", "clip", "seed", "success", "predicted", "role"] {
        assert!(head.iter().any(|h| h == col), "column {col} missing: {head:?}");
    }
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let mut roles: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for rec in rd.records() {
        let rec = rec.unwrap();
        n += 1;
        *roles.entry(rec[col("role")].to_string()).or_default() += 1;
        let p: f64 = rec[col("predicted")].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
        if rec[col("role")] != *"alpha=0" {
            let s: f64 = rec[col("success")].parse().unwrap();
            assert!((p - s).abs() < 1e-5, "{p} vs {s}");
        }
        assert!(rec[col("privacy")].starts_with("eps="));
    }
    // 2 DP arms × 3 C × 4 α × 2 seeds.
    assert_eq!(n, 48);
    assert_eq!(roles["calibration"], 18);
    assert_eq!(roles["held-out"], 18);
    assert_eq!(roles["alpha=0"], 12);

    // The lookup for plots: DP rows only.
    let merged = merge_files(&[csv_in]).unwrap();
    let f = predictor(&merged);
    for r in &merged {
        match r.sigma {
            Some(s) if s > 0.0 => assert!(f(r).is_some()),
            _ => assert!(f(r).is_none(), "{}", r.privacy),
        }
    }
}

#[test]
fn report_without_dp_rows_writes_no_prediction() {
    let rows = vec![
        row("none", None, None, 0.1, 0, 0.5, 0.02),
        row("sigma=0", Some(0.0), Some(1.0), 0.1, 0, 0.4, 0.02),
    ];
    let dir = tempfile::tempdir().unwrap();
    let csv_in = dir.path().join("results.csv");
    write_results(&csv_in, &rows).unwrap();
    let out = dir.path().join("rep");
    build_report(std::slice::from_ref(&csv_in), &out, 0.9, false).unwrap();
    assert!(out.join("summary.md").exists());
    assert!(!out.join("prediction.md").exists());
    assert!(!out.join("prediction.csv").exists());
}
