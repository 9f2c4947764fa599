//! End-to-end tests of `crowdout data` on the committed fixtures and temp files.

use std::process::Command;

fn crowdout(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdout")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_prints_counts_shape_and_balance() {
    let (ok, out, err) = crowdout(&["data", "info", "fashion-mnist-mini", "--train-limit", "200"]);
    assert!(ok, "{err}");
    assert!(out.contains("train      200 examples, shape [1, 28, 28], 10 classes"), "{out}");
    assert!(out.contains("test       300 examples") && out.contains("9:30 (10.0%)"), "{out}");
    let (ok, out, err) = crowdout(&["data", "info", "adult-mini"]);
    assert!(ok, "{err}");
    assert!(out.contains("features") && out.contains("age (std"), "{out}");
}

#[test]
fn info_csv_takes_flags_and_rejects_them_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bank.csv");
    let mut s = String::from("\"age\";\"job\";\"y\"\n");
    for i in 0..40 {
        s.push_str(&format!(
            "{};\"{}\";\"{}\"\n",
            20 + i,
            if i % 2 == 0 { "admin." } else { "services" },
            if i % 4 == 0 { "yes" } else { "no" }
        ));
    }
    std::fs::write(&p, s).unwrap();
    let spec = format!("csv:{}", p.display());
    let (ok, out, err) = crowdout(&[
        "data",
        "info",
        &spec,
        "--label-column",
        "y",
        "--separator",
        ";",
        "--positive-label",
        "yes",
        "--test-fraction",
        "0.25",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("train      30 examples, shape [3], 2 classes"), "{out}");
    let (ok, _, err) = crowdout(&["data", "info", &spec]);
    assert!(!ok && err.contains("label column `label`") && err.contains("bank.csv"), "{err}");
    let (ok, _, err) = crowdout(&["data", "info", "adult-mini", "--separator", ";"]);
    assert!(!ok && err.contains("apply only to csv:PATH"), "{err}");
}

#[test]
fn verify_fixtures_and_report_unknown_names() {
    let (ok, out, err) = crowdout(&["data", "verify", "fashion-mnist-mini", "adult-mini"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("fashion-mnist-mini: 4 files match") && out.contains("adult-mini: 2 files match"),
        "{out}"
    );
    let (ok, _, err) = crowdout(&["data", "info", "imagenet"]);
    assert!(!ok && err.contains("unknown dataset `imagenet`"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = crowdout(&["data", "verify", "adult", "--data-dir", tmp.path().to_str().unwrap()]);
    assert!(!ok && err.contains("crowdout data fetch adult"), "{err}");
}
