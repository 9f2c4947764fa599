//! End-to-end tests of `crowdout bound`.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdout")).arg("bound").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hardt_json() {
    let (ok, out, err) = run(&["hardt", "--alpha", "0.1", "--delta-gap", "0.5", "--xi", "0.02", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["result"]["value"].as_f64().unwrap() - 0.91).abs() < 1e-12);
    assert_eq!(v["result"]["kind"], "guarantee");
}

#[test]
fn critical_mass_with_privacy_side() {
    let (ok, out, err) = run(&[
        "critical-mass",
        "--target",
        "0.9",
        "--delta-gap",
        "0.5",
        "--xi",
        "0.02",
        "--n-train",
        "60000",
        "--s0",
        "0.01",
        "--epsilon",
        "1",
        "--delta",
        "1e-5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["hardt_alpha_star"].as_f64().unwrap() - 1.0 / 11.0).abs() < 1e-12);
    let k = v["privacy_lower_bound"]["min_k"].as_u64().unwrap();
    assert!(k >= 1, "{out}");
}

#[test]
fn ceiling_generic_and_gdp() {
    let (ok, out, err) = run(&[
        "ceiling",
        "--s0",
        "0.05",
        "--k",
        "3",
        "--epsilon",
        "0.5",
        "--delta",
        "1e-5",
        "--gdp-mu",
        "0.2",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["inputs"]["group_size"], 6);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["result"]["kind"], "approximate");
    // --tight needs the DP-SGD parameters, and says which.
    let (ok, _, err) = run(&["ceiling", "--s0", "0.05", "--k", "3", "--tight"]);
    assert!(!ok && err.contains("--sample-rate") && err.contains("--steps"), "{err}");
}

#[test]
fn flags_are_named_in_errors() {
    let (ok, _, err) = run(&["hardt", "--alpha", "1.5", "--delta-gap", "0.5", "--xi", "0.02"]);
    assert!(!ok && err.contains("--alpha"), "{err}");
    let (ok, _, err) = run(&["hardt", "--alpha", "0.1", "--delta-gap", "nan", "--xi", "0.02"]);
    assert!(!ok && err.contains("--delta-gap"), "{err}");
    let (ok, _, err) = run(&["ceiling", "--s0", "2", "--k", "3", "--epsilon", "1", "--delta", "0"]);
    assert!(!ok && err.contains("--s0"), "{err}");
    let (ok, _, err) = run(&["ceiling", "--s0", "0.1", "--k", "3", "--epsilon=-1", "--delta", "0"]);
    assert!(!ok && err.contains("invalid --epsilon"), "{err}");
    let (ok, _, err) =
        run(&["noise", "--alpha", "0.1", "--nu-wrong-label", "2", "--delta-gap", "0.5", "--xi", "0.1"]);
    assert!(!ok && err.contains("--nu-wrong-label"), "{err}");
}

#[test]
fn dpsgd_from_margins_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    std::fs::write(&p, "margin,x_norm\n1.0,1.0\n0.1,1.0\n").unwrap();
    let ps = p.to_str().unwrap();
    let common = [
        "dpsgd",
        "--margins",
        ps,
        "--classes",
        "2",
        "--theta0-dist",
        "1",
        "--lambda",
        "0.5",
        "--lr",
        "0.5",
        "--steps",
        "100",
        "--clip",
        "1",
        "--n-train",
        "100",
        "--q",
        "1",
        "--dim",
        "6",
        "--smoothness",
        "1",
        "--json",
    ];
    let mut a: Vec<&str> = common.to_vec();
    a.extend(["--sigma", "1"]);
    let (ok, out, err) = run(&a);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["value"], 0.5); // same case as the unit test's hand computation
    let mut a: Vec<&str> = common.to_vec();
    a.extend(["--sigma=-1"]);
    let (ok, _, err) = run(&a);
    assert!(!ok && err.contains("invalid --sigma"), "{err}");
    std::fs::write(&p, "margin,x_norm\n1.0,abc\n").unwrap();
    let mut a: Vec<&str> = common.to_vec();
    a.extend(["--sigma", "1"]);
    let (ok, _, err) = run(&a);
    assert!(!ok && err.contains("line 2"), "{err}");
}

#[test]
fn dpsgd_second_moment_matches_the_library() {
    use crowdout::bounds::dpsgd::ConvexModel;
    use crowdout::bounds::moment::{moment_bound, MomentInputs};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    std::fs::write(&p, "margin,x_norm\n10.0,1.0\n0.5,1.0\n-1.0,1.0\n").unwrap();
    let ps = p.to_str().unwrap();
    let args = [
        "dpsgd",
        "--second-moment",
        "--margins",
        ps,
        "--classes",
        "2",
        "--theta0-dist",
        "1",
        "--lambda",
        "0.1",
        "--lr",
        "0.1",
        "--steps",
        "1000",
        "--sigma",
        "1",
        "--clip",
        "1",
        "--n-train",
        "1000",
        "--q",
        "0.1",
        "--dim",
        "10",
        "--smoothness",
        "1",
        "--json",
    ];
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = [10.0, 0.5, -1.0];
    let x = [1.0; 3];
    let lib = moment_bound(&MomentInputs {
        model: ConvexModel::Softmax { classes: 2 },
        margins: &m,
        x_norms: &x,
        theta0_dist: 1.0,
        theta_hat_error: 0.0,
        lambda: 0.1,
        lr: 0.1,
        steps: 1000,
        sigma: 1.0,
        clip: 1.0,
        expected_batch: 100.0,
        q: 0.1,
        dim: 10,
        clipped_grad_sq_sum: 1000.0, // the default N·C²
        smoothness: 1.0,
        beta: 0.05,
    })
    .unwrap();
    assert_eq!(v["result"]["value"].as_f64().unwrap(), lib.mean.value);
    assert_eq!(v["per_run"]["value"].as_f64().unwrap(), lib.high_prob.value);
    assert_eq!(v["details"]["dominant"], "sampling");
    // Three classes are refused, naming the flag.
    let mut a = args.to_vec();
    a[5] = "3";
    let (ok, _, err) = run(&a);
    assert!(!ok && err.contains("--classes = 3"), "{err}");
}

#[test]
fn multi_collectives() {
    let (ok, out, err) = run(&[
        "multi",
        "--collective",
        "0.1,1,0.5,0.02",
        "--collective",
        "0.05,2,0.5,0.02",
        "--overlap",
        "1,0,0.5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["result"]["value"].as_f64().unwrap() - 0.665).abs() < 1e-12);
}

#[test]
fn tight_ceiling_from_the_accountant_beats_the_generic_conversion() {
    // DP-SGD on MNIST at σ = 1.1, q = 256/60000, 15 epochs (ε_PLD ≈ 1.134 at δ = 1e-5); 3 records.
    let (ok, out, err) = run(&[
        "--json",
        "ceiling",
        "--s0",
        "0.02",
        "--k",
        "3",
        "--tight",
        "--sample-rate",
        "0.004267",
        "--noise-multiplier",
        "1.1",
        "--steps",
        "3516",
        "--epsilon",
        "1.134",
        "--delta",
        "1e-5",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tight = v["results"][0]["result"]["value"].as_f64().unwrap();
    let generic = v["results"][1]["result"]["value"].as_f64().unwrap();
    assert!(tight >= 0.02 && tight < generic && generic <= 1.0, "tight {tight}, generic {generic}");
    assert!(tight < 0.5, "tight ceiling {tight}");
}

#[test]
fn tight_ceiling_refuses_replace_one_instead_of_a_k_group_answer() {
    // Regression (issue item 4): this exact command printed 0.118, below the add/remove answer
    // 0.373 for the same training. Poisson-sampled DP-SGD is add/remove DP, so a substitution of
    // k = 3 records is a group of 6 add/remove records whatever --adjacency says; 0.118 (the
    // k-group profile applied once) is not a guarantee. The CLI must refuse, naming both flags.
    let cmd = [
        "ceiling",
        "--tight",
        "--adjacency",
        "replace-one",
        "--k",
        "3",
        "--s0",
        "0.02",
        "--sample-rate",
        "0.004267",
        "--noise-multiplier",
        "1.1",
        "--steps",
        "3516",
    ];
    let (ok, out, err) = run(&cmd);
    assert!(!ok, "accepted; printed {out}");
    assert!(
        err.contains("--tight") && err.contains("--adjacency replace-one") && err.contains("2k"),
        "{err}"
    );
    assert!(!out.contains("0.118"), "{out}");
    // The same training under add/remove: the two-stage (remove 3, add 3) tight ceiling.
    let (ok, out, err) = run(&[
        "--json",
        "ceiling",
        "--tight",
        "--k",
        "3",
        "--s0",
        "0.02",
        "--sample-rate",
        "0.004267",
        "--noise-multiplier",
        "1.1",
        "--steps",
        "3516",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tight = v["results"][0]["result"]["value"].as_f64().unwrap();
    assert_eq!(v["inputs"]["group_size"], 6);
    assert!((tight - 0.373).abs() < 0.005, "add/remove tight ceiling {tight} (expected ≈ 0.373)");
}
