//! `--shard 1/2` and `2/2`, merged, equal the unsharded sweep; failed cells are retried;
//! bad spec files and flags get errors naming the file and key. Uses the fake runner test hook.

use std::path::Path;
use std::process::{Command, Output};

use crowdout::sweep::store::{read_results, ResultRow};

const SPEC: &str = r#"
name = "shard"
[grid]
dataset = ["d1", "d2"]
model = ["m"]
collectives = [{ name = "p", spec = "trigger=patch:size=3,target=0" }]
alpha = [0.0, 0.01, 0.1]
privacy = ["none", "eps=2"]
clip = [1.0]
seed = [0, 1, 2]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

fn crowdout(args: &[&str], fake: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.args(args);
    match fake {
        Some(f) => c.env("CROWDOUT_FAKE_RUNNER", f),
        None => c.env_remove("CROWDOUT_FAKE_RUNNER"),
    };
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{e}");
    e
}

fn sorted(p: &Path) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = read_results(p)
        .unwrap()
        .into_iter()
        .map(|mut r| {
            r.wall_s = None;
            r
        })
        .collect();
    rows.sort_by(|a, b| a.config_hash.cmp(&b.config_hash));
    rows
}

#[test]
fn two_shards_merged_equal_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let s = spec.to_str().unwrap();
    let whole = d.join("whole");
    let shards = d.join("shards");
    let fake = Some("sleep-ms:0");
    ok(&crowdout(&["sweep", s, "--out", whole.to_str().unwrap(), "--jobs", "3"], fake));
    for sh in ["1/2", "2/2"] {
        ok(&crowdout(&["sweep", s, "--out", shards.to_str().unwrap(), "--shard", sh, "--jobs", "2"], fake));
    }
    let a = shards.join("results.shard-1-of-2.csv");
    let b = shards.join("results.shard-2-of-2.csv");
    let (na, nb) = (sorted(&a).len(), sorted(&b).len());
    assert_eq!(na + nb, 36);
    assert!(na.abs_diff(nb) <= 1);
    let merged = d.join("merged.csv");
    ok(&crowdout(
        &["report", "--merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", merged.to_str().unwrap()],
        None,
    ));
    assert_eq!(sorted(&merged), sorted(&whole.join("results.csv")));
    // Merging a file with itself (or overlapping shards) is fine; a conflicting row is not.
    ok(&crowdout(
        &[
            "report",
            "--merge",
            a.to_str().unwrap(),
            a.to_str().unwrap(),
            "--out",
            d.join("m2.csv").to_str().unwrap(),
        ],
        None,
    ));
    let text = std::fs::read_to_string(&a).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut row: ResultRow = {
        let rows = read_results(&a).unwrap();
        rows[0].clone()
    };
    row.success = Some(0.123456);
    let line = String::from_utf8(row.to_csv_line().unwrap()).unwrap();
    lines.truncate(1);
    lines.push(line.trim_end().to_string());
    let c = d.join("conflict.csv");
    std::fs::write(&c, lines.join("\n") + "\n").unwrap();
    let o = crowdout(
        &[
            "report",
            "--merge",
            a.to_str().unwrap(),
            c.to_str().unwrap(),
            "--out",
            d.join("m3.csv").to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("conflicting") && e.contains("conflict.csv") && e.contains("success"), "{e}");
}

#[test]
fn failed_cells_are_recorded_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let s = spec.to_str().unwrap();
    let out = d.join("o");
    let o = crowdout(&["sweep", s, "--out", out.to_str().unwrap()], Some("fail-seed:1"));
    assert!(!o.status.success(), "failures must give a non-zero exit");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("12 cell(s) failed"), "{e}");
    let rows = read_results(out.join("results.csv")).unwrap();
    assert_eq!(rows.iter().filter(|r| !r.error.is_empty()).count(), 12);
    let e = ok(&crowdout(&["sweep", s, "--out", out.to_str().unwrap()], Some("sleep-ms:0")));
    assert!(e.contains("ran 12 (0 failed), skipped 24"), "{e}");
    // dry run lists the cells and counts them
    // (the fake runner's env also lets the dry run accept the fake dataset/model names)
    let o = crowdout(&["sweep", s, "--out", out.to_str().unwrap(), "--dry-run"], Some("sleep-ms:0"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("36 cells in the grid, 36 in this shard, 0 to run, 36 done"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.contains("\tdone\t")).count(), 36);
}

#[test]
fn real_runner_rejects_unknown_names_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, SPEC.replace("seed = [0, 1, 2]", "seed = [0]")).unwrap();
    let out = dir.path().join("o");
    let o = crowdout(&["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("s.toml") && e.contains("grid.dataset") && e.contains("unknown dataset `d1`"), "{e}");
    assert!(!out.exists(), "nothing may be written for a spec the real runner cannot run");
}

#[test]
fn spec_and_flag_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, String, &[&str])] = &[
        (
            "unknown.toml",
            SPEC.replace("lr = 0.1", "lr = 0.1\nlearnig_rate = 2"),
            &["unknown.toml", "learnig_rate", "line 15"],
        ),
        ("type.toml", SPEC.replace("epochs = 1", "epochs = \"one\""), &["type.toml", "epochs", "line 12"]),
        (
            "empty.toml",
            SPEC.replace("seed = [0, 1, 2]", "seed = []"),
            &["empty.toml:10:", "grid.seed", "empty"],
        ),
        ("grid.toml", SPEC.replace("alpha = [", "alphas = ["), &["grid.toml", "alphas"]),
    ];
    for (name, text, needles) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let o = crowdout(&["sweep", p.to_str().unwrap(), "--dry-run"], None);
        assert_eq!(o.status.code(), Some(2));
        let e = String::from_utf8_lossy(&o.stderr);
        for n in *needles {
            assert!(e.contains(n), "{name}: `{n}` not in: {e}");
        }
        assert!(!e.contains("panicked"), "{e}");
    }
    let p = d.join("ok.toml");
    std::fs::write(&p, SPEC).unwrap();
    let o = crowdout(&["sweep", p.to_str().unwrap(), "--shard", "3/2", "--dry-run"], None);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--shard 3/2"), "{e}");
    let o = crowdout(&["sweep", d.join("missing.toml").to_str().unwrap()], None);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("missing.toml"), "{e}");
    // A results file of another format is refused, naming the file.
    let out = d.join("o");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("results.csv"), "x,y\n1,2\n").unwrap();
    let o = crowdout(&["sweep", p.to_str().unwrap(), "--out", out.to_str().unwrap()], Some("sleep-ms:0"));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("results.csv") && e.contains("schema_version"), "{e}");
}
