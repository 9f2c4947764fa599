//! `crowdout audit steerability` end to end on the adult-mini fixture (real training, seconds in
//! release): the rows, the plan, critical_mass.csv and its plot; a rerun runs nothing; a crash
//! (rows cut off mid-round, a torn line) resumes to the same design and rows; shards merge; and
//! `crowdout report` redoes critical_mass.csv from the rows.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use crowdout::sweep::store::read_results;

const SPEC: &str = r#"name = "steer-mini"
[grid]
dataset = ["adult-mini"]
model = ["softmax"]
collectives = [{ name = "age+4sd", spec = "trigger=offset:feature=0:shift_std=4,target=1,strategy=feature-label" }]
privacy = ["none", "eps=8"]
clip = [1.0]

[steer]
alpha_range = [0.01, 0.3]
init = 3
init_seeds = 1
batch = 2
max_cells = 7

[train]
epochs = 2
batch_size = 64
lr = 0.1
"#;

fn crowdout(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdout")).args(args).output().expect("runs the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn audit(spec: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "audit",
        "--json",
        "steerability",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "1",
        "--torch-threads",
        "1",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = crowdout(&args);
    assert!(ok, "audit failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// (config_hash, success) of the successful rows, sorted.
fn ok_rows(path: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = read_results(path)
        .unwrap()
        .into_iter()
        .filter(|r| r.is_ok())
        .map(|r| (r.config_hash, r.success.unwrap().to_bits()))
        .collect();
    v.sort();
    v
}

#[test]
fn steerability_audit_runs_resumes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("steer.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = d.join("out");
    let v = audit(&spec, &out, &[]);

    // Two arms, each within its budget, each with α₅₀ and α*(0.5), α*(0.9) estimates or reasons.
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    for a in arms {
        let used = a["cells_used"].as_u64().unwrap();
        assert!((3..=7).contains(&used), "{a}");
        assert_eq!(a["alpha_star"].as_array().unwrap().len(), 2, "{a}");
        assert!(a["alpha50"].get("alpha").is_some() || a["alpha50"].get("error").is_some(), "{a}");
    }
    let results = out.join("results.csv");
    let rows = ok_rows(&results);
    let cells = v["cells"].as_u64().unwrap() as usize;
    assert_eq!(rows.len(), cells, "one successful row per planned run");
    assert_eq!(rows.iter().map(|r| &r.0).collect::<HashSet<_>>().len(), cells, "no duplicate cell");
    for r in read_results(&results).unwrap() {
        assert!(r.alpha >= 0.01 && r.alpha <= 0.3, "α {} outside the range", r.alpha);
    }
    let plan = std::fs::read_to_string(out.join("steer_plan.jsonl")).unwrap();
    assert!(plan.lines().count() >= 2, "the initial round and at least one adaptive round:\n{plan}");

    // critical_mass.csv: the header and one line per arm and target; the plot beside it.
    let cm = std::fs::read_to_string(out.join("critical_mass.csv")).unwrap();
    let header = cm.lines().next().unwrap();
    for col in [
        "privacy",
        "epsilon",
        "alpha_star",
        "alpha_star_lo",
        "alpha_star_hi",
        "alpha50",
        "alpha50_lo",
        "alpha50_hi",
        "cells_used",
    ] {
        assert!(header.split(',').any(|h| h == col), "no column {col}: {header}");
    }
    assert_eq!(cm.lines().count(), 1 + 2 * 2, "{cm}");
    assert!(cm.contains(",none,,inf,0.5,") && cm.contains(",eps=8,1,"), "{cm}");
    assert!(
        out.join("critical_mass_intervals.png").exists() && out.join("critical_mass_intervals.svg").exists()
    );
    assert!(out.join("summary.md").exists() && out.join("steer.json").exists());

    // A rerun runs nothing and changes nothing.
    let before = std::fs::read(&results).unwrap();
    let v2 = audit(&spec, &out, &["--no-report"]);
    assert_eq!(v2["cells"], v["cells"]);
    assert_eq!(std::fs::read(&results).unwrap(), before);

    // A crash: the results file cut after the first 4 rows plus a torn line, the plan after the
    // first two rounds plus a torn line. The rerun finishes the planned runs, then plans the same
    // rounds again from the same rows: the same design and rows (CPU training is deterministic).
    let crash = d.join("crash");
    std::fs::create_dir_all(&crash).unwrap();
    let text = String::from_utf8(before.clone()).unwrap();
    let mut cut: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    cut.push_str(&text.lines().nth(5).unwrap()[..20]);
    std::fs::write(crash.join("results.csv"), cut).unwrap();
    let mut p: String = plan.lines().take(2).map(|l| format!("{l}\n")).collect();
    p.push_str("{\"round\":2,\"cel");
    std::fs::write(crash.join("steer_plan.jsonl"), p).unwrap();
    let v3 = audit(&spec, &crash, &["--no-report"]);
    assert_eq!(v3["cells"], v["cells"]);
    assert_eq!(ok_rows(&crash.join("results.csv")), rows, "the resumed run has exactly the same rows");
    assert_eq!(std::fs::read_to_string(crash.join("steer_plan.jsonl")).unwrap(), plan, "and the same design");
    assert_eq!(v3["arms"], v["arms"]);

    // Shards: one arm each; merged, they are the unsharded run's rows, and `report` on the merge
    // (beside the audit's steer.json) writes the same critical_mass.csv.
    let sh = d.join("sharded");
    audit(&spec, &sh, &["--shard", "1/2"]);
    audit(&spec, &sh, &["--shard", "2/2"]);
    let merged = sh.join("results.csv");
    let (ok, _, err) = crowdout(&[
        "report",
        "--merge",
        sh.join("results.shard-1-of-2.csv").to_str().unwrap(),
        sh.join("results.shard-2-of-2.csv").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(ok_rows(&merged), rows);
    let (ok, _, err) = crowdout(&["report", merged.to_str().unwrap(), "--no-plots"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(sh.join("critical_mass.csv")).unwrap(), cm);

    // A grid sweep's rows: `report --critical-mass` fits them the same way.
    let rep = d.join("rep");
    let (ok, _, err) = crowdout(&[
        "report",
        results.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
        "--critical-mass",
        "--no-plots",
    ]);
    assert!(ok, "{err}");
    assert!(rep.join("critical_mass.csv").exists());
}

#[test]
fn bad_steerability_specs_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    for (from, to, want) in [
        ("alpha_range = [0.01, 0.3]", "alpha_range = [0.3, 0.01]", "bad.toml:10: `steer.alpha_range`"),
        ("privacy = [", "alpha = [0.1]\nprivacy = [", "alpha"),
        ("max_cells = 7", "max_cells = 2", "steer.max_cells"),
    ] {
        std::fs::write(&spec, SPEC.replace(from, to)).unwrap();
        let (ok, _, err) = crowdout(&[
            "audit",
            "steerability",
            spec.to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ]);
        assert!(!ok && err.contains(want), "{to}: {err}");
    }
}
