//! End-to-end runs of `crowdout data synth-playlists` and `crowdout recsys run` on tiny data:
//! the results CSV has the columns reports read, its values are in range, a rerun resumes
//! without new rows, and bad settings are named.

use std::process::Command;

fn crowdout() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.env("RUST_BACKTRACE", "0");
    c
}

const TINY: &str = r#"
n_test = 40
n_recos = 100
privacy = ["non-private", "eps=8"]
strategies = ["random", "dir-lof"]
budgets = [3]
seeds = [0, 1]
second = "in-clust"
[corpus]
playlists = 300
[model]
dim = 8
heads = 2
ff = 16
n_candidates = 20
n_easy = 2
n_hard = 3
[train]
epochs = 1
batch = 32
windows = 2
"#;

#[test]
fn synth_playlists_prints_every_target_and_writes_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.txt");
    let o = crowdout()
        .args(["data", "synth-playlists", "--playlists", "400", "--seed", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for name in ["singleton_share", "top_share", "mean_len", "min_len", "max_len"] {
        assert!(text.contains(name), "{text}");
    }
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), 400);
    assert!(lines.lines().all(|l| l.split(' ').count() >= 5));
}

#[test]
fn recsys_run_writes_summary_columns_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.path().join("out");
    let run =
        || crowdout().args(["recsys", "run", "--config"]).arg(&cfg).arg("--out").arg(&out).output().unwrap();
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = csv::Reader::from_path(out.join("summary.csv")).unwrap();
    let head = r.headers().unwrap().clone();
    for col in ["strategy", "budget", "amplification", "amplification_lo", "amplification_hi"] {
        assert!(head.iter().any(|h| h == col), "missing column {col} in {head:?}");
    }
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    // 2 privacy levels × (none + 2 strategies × 2 collectives).
    assert_eq!(rows.len(), 2 * (1 + 2 * 2));
    for row in &rows {
        assert_eq!(row[col("seeds")].parse::<usize>().unwrap(), 2);
        if &row[col("strategy")] == "none" {
            continue;
        }
        let (a, lo, hi): (f64, f64, f64) = (
            row[col("amplification")].parse().unwrap(),
            row[col("amplification_lo")].parse().unwrap(),
            row[col("amplification_hi")].parse().unwrap(),
        );
        assert!(a >= 0.0 && lo <= a && a <= hi, "{row:?}");
        assert!(!row[col("other")].is_empty(), "two collectives: each names the other");
    }
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    // 2 privacy × 2 seeds × (1 reference row + 2 strategies × 2 collective rows), plus a header.
    assert_eq!(runs.lines().count(), 1 + 2 * 2 * (1 + 2 * 2));
    let o = run();
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(out.join("runs.csv")).unwrap(), runs, "a rerun adds no rows");
}

#[test]
fn bad_privacy_and_budget_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    // Runs `recsys run` on `config`; returns whether it succeeded and its stderr.
    let run = |config: String| {
        std::fs::write(&cfg, config).unwrap();
        let o = crowdout()
            .args(["recsys", "run", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(dir.path())
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = run(TINY.replace("\"eps=8\"", "\"eps=0\""));
    assert!(!ok && err.contains("privacy") && err.contains("eps=0"), "{err}");
    let (ok, err) = run(TINY.replace("budgets = [3]", "budgets = [100000]"));
    assert!(!ok && err.contains("budgets") && err.contains("100000"), "{err}");
}
