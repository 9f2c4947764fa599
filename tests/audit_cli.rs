//! `crowdout audit …` end to end: small runs with `--json`, and flag validation.

use std::process::Command;

fn crowdout(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdout")).args(args).output().expect("runs the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = crowdout(args);
    assert!(ok, "crowdout {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn canary_json_reports_bound_below_accountant() {
    let v = json(&[
        "audit",
        "canary",
        "--json",
        "--runs",
        "4",
        "--n-train",
        "40",
        "--steps",
        "5",
        "--epsilon",
        "2",
        "--seed",
        "3",
    ]);
    let lb = v["bound"]["epsilon_lb"].as_f64().unwrap();
    let eps = v["accountant_epsilon"].as_f64().unwrap();
    // the accountant calibrates σ so that ε ≤ target, within its tolerance
    assert!(eps <= 2.0 + 1e-9 && eps > 1.95, "calibrated ε {eps}");
    assert!(lb >= 0.0 && lb <= eps);
    assert_eq!(v["scores_in"].as_array().unwrap().len(), 4);
    assert_eq!(v["n_base"].as_u64(), Some(40));
    // same seed, same output
    let w = json(&[
        "audit",
        "canary",
        "--json",
        "--runs",
        "4",
        "--n-train",
        "40",
        "--steps",
        "5",
        "--epsilon",
        "2",
        "--seed",
        "3",
    ]);
    assert_eq!(v, w);
}

#[test]
fn one_run_and_mia_json() {
    let v = json(&[
        "audit",
        "one-run",
        "--json",
        "--canaries",
        "20",
        "--n-train",
        "40",
        "--steps",
        "5",
        "--noise-multiplier",
        "2",
        "--guesses",
        "2,5",
    ]);
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert!(v["epsilon_lb"].as_f64().unwrap() <= v["accountant_epsilon"].as_f64().unwrap());
    let v = json(&[
        "audit",
        "mia",
        "--json",
        "--members",
        "40",
        "--non-members",
        "40",
        "--hidden",
        "16",
        "--epochs",
        "5",
        "--batch-size",
        "40",
        "--shadows",
        "2",
        "--collective",
        "alpha=0.05,target=0,trigger=patch:size=3:pos=br:value=1",
    ]);
    for attack in ["auc_loss", "auc_lira_offline", "auc_lira_online"] {
        // every AUC, for all members, the collective's and the others, inside its interval
        for group in ["", "_collective", "_non_collective"] {
            let k = format!("{attack}{group}");
            let a = v[&k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
            let (lo, hi) = (v[format!("{k}_lo")].as_f64().unwrap(), v[format!("{k}_hi")].as_f64().unwrap());
            assert!(0.0 <= lo && lo <= a && a <= hi && hi <= 1.0, "{k} = {a} [{lo}, {hi}]");
        }
    }
    assert_eq!(v["collective_members"].as_u64(), Some(2));
    assert!(v["accountant_epsilon"].is_null());
}

#[test]
fn bad_flags_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["audit", "canary", "--epsilon", "1", "--delta", "2"], "--delta"),
        (&["audit", "canary", "--epsilon", "1", "--confidence", "1"], "--confidence"),
        (&["audit", "canary", "--epsilon=-1"], "--epsilon"),
        (&["audit", "canary"], "--noise-multiplier or --epsilon"),
        (&["audit", "canary", "--epsilon", "1", "--runs", "1"], "--runs"),
        (&["audit", "canary", "--epsilon", "1", "--target", "10"], "--target"),
        (&["audit", "canary", "--epsilon", "1", "--trigger", "patch:size=40:pos=br:value=1"], "--trigger"),
        (&["audit", "canary", "--epsilon", "1", "--sample-rate", "0"], "--sample-rate"),
        (&["audit", "one-run", "--epsilon", "1", "--canaries", "10", "--guesses", "6"], "--guesses"),
        (&["audit", "mia", "--batch-size", "0"], "--batch-size"),
        (&["audit", "mia", "--members", "5000", "--batch-size", "10", "--shadows", "0"], "5000"),
        (&["audit", "mia", "--epsilon", "8", "--input-norm", "fit"], "--input-norm fit"),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = crowdout(args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: error should mention {needle}: {err}");
    }
    // clap-level conflicts
    let (ok, _, err) = crowdout(&["audit", "canary", "--epsilon", "1", "--noise-multiplier", "1"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}
