//! `crowdout sweep --slurm` against a running Slurm: `make test-slurm` (tests/slurm/run.sh) starts
//! a single-node Slurm and runs these ignored tests with `--ignored`; they fail without one.
//!
//! - Real training: a small adult-mini grid as a 3-task array plus its merge job; the merged CSV
//!   equals an unsharded local run of the same grid row for row (same `config_hash` set; every
//!   column but timing and provenance equal, measurements included).
//! - Faults (fake runner, `CROWDOUT_FAKE_RUNNER`): an array task cancelled mid-cell (`scancel`)
//!   and another requeued mid-cell (`scontrol requeue`) resume from their shard files; cells that
//!   fail are retried by the next submission; the final merge equals an uninterrupted run, with no
//!   successful row written twice and none lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crowdout::sweep::store::{read_results, ResultRow};

const FAKE: &str = "CROWDOUT_FAKE_RUNNER";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_crowdout")
}

fn need_slurm() {
    let ok = Command::new("sinfo").arg("-h").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "no running Slurm (sinfo failed): run these tests with `make test-slurm`");
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Submits `spec` with `--slurm`; returns (array job id, merge job id) from its output.
fn submit(spec: &Path, out: &Path, shards: usize, fake: Option<&str>) -> (String, String) {
    let mut c = Command::new(bin());
    c.args(["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--slurm"]).args([
        "--shards",
        &shards.to_string(),
        "--cpus-per-task",
        "1",
        "--time",
        "20",
    ]);
    match fake {
        Some(f) => c.env(FAKE, f),
        None => c.env_remove(FAKE),
    };
    let o = run(&mut c);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let id = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split(':').next())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("no `{prefix}` line in\n{stdout}"))
    };
    (id("array job "), id("merge job "))
}

/// Job ids (array tasks as `<array>_<i>`) still known to squeue, with their states.
fn queue(ids: &[&str]) -> Vec<(String, String)> {
    let o = Command::new("squeue").args(["-h", "-o", "%i %T", "-j", &ids.join(",")]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect()
}

/// Waits until none of `ids` is pending or running (cancelled merge jobs included).
fn wait_gone(ids: &[&str], limit: Duration, out: &Path) {
    let t0 = Instant::now();
    loop {
        let q = queue(ids);
        if q.is_empty() {
            return;
        }
        if t0.elapsed() > limit {
            panic!("jobs {ids:?} still queued after {limit:?}: {q:?}\nlogs:\n{}", logs(out));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn logs(out: &Path) -> String {
    let mut s = String::new();
    if let Ok(dir) = std::fs::read_dir(out.join("slurm").join("logs")) {
        let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            s.push_str(&format!("== {}\n{}\n", f.display(), std::fs::read_to_string(&f).unwrap_or_default()));
        }
    }
    s
}

fn rows_by_hash(p: &Path) -> HashMap<String, ResultRow> {
    let rows = read_results(p).unwrap_or_else(|e| panic!("{e}"));
    let n = rows.len();
    let map: HashMap<String, ResultRow> = rows.into_iter().map(|r| (r.config_hash.clone(), r)).collect();
    assert_eq!(map.len(), n, "{}: a cell appears twice", p.display());
    map
}

/// The merged CSV equals the unsharded run row for row: the same `config_hash` set, and every
/// column but timing and provenance (wall_s, git_commit, crowdout_version) the same.
fn assert_same_rows(merged: &Path, whole: &Path) -> usize {
    let (m, w) = (rows_by_hash(merged), rows_by_hash(whole));
    let mut mk: Vec<&String> = m.keys().collect();
    let mut wk: Vec<&String> = w.keys().collect();
    mk.sort();
    wk.sort();
    assert_eq!(mk, wk, "config_hash sets differ");
    for (h, r) in &m {
        assert!(r.is_ok(), "{h}: {}", r.error);
        r.same_results(&w[h]).unwrap_or_else(|d| panic!("cell {h}: merged vs unsharded: {d}"));
    }
    m.len()
}

/// Successful and failed rows per shard file.
fn shard_rows(out: &Path, n: usize) -> Vec<ResultRow> {
    (1..=n)
        .flat_map(|i| {
            let p = out.join(format!("results.shard-{i}-of-{n}.csv"));
            if p.exists() {
                read_results(&p).unwrap()
            } else {
                Vec::new()
            }
        })
        .collect()
}

fn ok_rows(path: &Path) -> usize {
    read_results(path).map(|r| r.iter().filter(|r| r.is_ok()).count()).unwrap_or(0)
}

const REAL_SPEC: &str = r#"
name = "slurm-real"
[grid]
dataset = ["adult-mini"]
model = ["softmax"]
collectives = [{ name = "age+4sd", spec = "trigger=offset:feature=0:shift_std=4,target=1,strategy=feature-label" }]
alpha = [0.0, 0.1]
privacy = ["sigma=0", "eps=8"]
clip = [1.0]
seed = [0, 1]
[train]
epochs = 2
batch_size = 64
lr = 0.1
weight_decay = 0.05
"#;

#[test]
#[ignore = "needs a running Slurm: make test-slurm"]
fn real_cells_as_an_array_merge_to_the_unsharded_run() {
    need_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("real.toml");
    std::fs::write(&spec, REAL_SPEC).unwrap();
    let out = d.join("cluster");
    let t0 = Instant::now();
    let (array, merge) = submit(&spec, &out, 3, None);
    wait_gone(&[&array, &merge], Duration::from_secs(300), &out);
    let merged = out.join("results.csv");
    assert!(merged.exists(), "no merged results after the merge job\n{}", logs(&out));
    assert!(out.join("summary.md").exists(), "the merge job writes the report\n{}", logs(&out));
    let cluster_s = t0.elapsed().as_secs_f64();

    // The same grid unsharded, here, with the tasks' thread count (results are bit-identical
    // only for the same count).
    let whole = d.join("whole");
    let t1 = Instant::now();
    run(Command::new(bin())
        .args(["sweep", spec.to_str().unwrap(), "--out", whole.to_str().unwrap()])
        .args(["--jobs", "1", "--torch-threads", "1", "--no-progress"])
        .env_remove(FAKE));
    let n = assert_same_rows(&merged, &whole.join("results.csv"));
    assert_eq!(n, 8);
    eprintln!(
        "real: 8 cells as 3 array tasks + merge job in {cluster_s:.1} s; unsharded run {:.1} s; merged == unsharded",
        t1.elapsed().as_secs_f64()
    );
}

const FAKE_SPEC: &str = r#"
name = "slurm-faults"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["trigger=patch:size=3,target=0"]
alpha = [0.0, 0.01, 0.1, 0.2]
privacy = ["none", "eps=2"]
clip = [1.0]
seed = [0, 1, 2, 3]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

#[test]
#[ignore = "needs a running Slurm: make test-slurm"]
fn failed_cancelled_and_requeued_tasks_resume_and_lose_nothing() {
    need_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("faults.toml");
    std::fs::write(&spec, FAKE_SPEC).unwrap();
    let (cells, n) = (32, 2);
    let out = d.join("cluster");
    let merged = out.join("results.csv");
    let shard = |i: usize| out.join(format!("results.shard-{i}-of-{n}.csv"));

    // 1. Slow cells; task 1 is cancelled and task 2 requeued, each in the middle of a cell. The
    //    requeued task starts again (restart 1 in its log) and finishes its shard; the cancelled
    //    one leaves its array short, so the merge job never runs (afterok cannot be met;
    //    --kill-on-invalid-dep cancels it).
    let (a1, m1) = submit(&spec, &out, n, Some("sleep-ms:1000"));
    let t0 = Instant::now();
    while ok_rows(&shard(1)) < 2 || ok_rows(&shard(2)) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress\n{}", logs(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500)); // into the next cell
    run(Command::new("scancel").arg(format!("{a1}_1")));
    run(Command::new("scontrol").args(["requeue", &format!("{a1}_2")]));
    // Slurm holds a requeued job back (its begin time is set ~2 minutes ahead). Release it once
    // the killed run has surely ended (KillWait = 5 s in tests/slurm/run.sh): released earlier,
    // the old run's exit can be booked against the new one.
    let t_requeue = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    while t_requeue.elapsed() < Duration::from_secs(60) {
        if queue(&[&format!("{a1}_2")]).iter().any(|(_, st)| st == "PENDING") {
            run(Command::new("scontrol").args(["update", &format!("JobId={a1}_2"), "StartTime=now"]));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let t_cancel = Instant::now();
    wait_gone(&[&a1, &m1], Duration::from_secs(300), &out);
    eprintln!(
        "faults: step 1 (cancel, requeue) done {:.1} s after the cancel",
        t_cancel.elapsed().as_secs_f64()
    );
    assert!(!merged.exists(), "the merge ran although task 1 was cancelled\n{}", logs(&out));
    let cancelled_at = ok_rows(&shard(1));
    assert!(cancelled_at < 16, "task 1 finished before it was cancelled; nothing was tested");
    assert_eq!(ok_rows(&shard(2)), 16, "the requeued task did not finish its shard\n{}", logs(&out));
    let log = logs(&out);
    assert!(log.contains("restart 1"), "task 2 was not requeued:\n{log}");

    // 2. Resubmitted, and the cells of seed 2 fail (shard 1 holds seeds 0 and 2, and has cells of
    //    both left): task 1 exits non-zero after recording them, the merge job is cancelled.
    let left_seed2 = 8 - read_results(shard(1)).unwrap().iter().filter(|r| r.is_ok() && r.seed == 2).count();
    assert!(left_seed2 > 0);
    let (a2, m2) = submit(&spec, &out, n, Some("sleep-ms:100,fail-seed:2"));
    let t2 = Instant::now();
    wait_gone(&[&a2, &m2], Duration::from_secs(120), &out);
    eprintln!("faults: step 2 (failures) {:.1} s", t2.elapsed().as_secs_f64());
    assert!(!merged.exists(), "the merge ran after a failed task\n{}", logs(&out));
    let failed = read_results(shard(1)).unwrap().iter().filter(|r| !r.is_ok()).count();
    assert_eq!(failed, left_seed2, "{}", logs(&out));
    assert_eq!(ok_rows(&shard(1)), 16 - left_seed2);

    // 3. Resubmitted again: task 1 retries its failed cells, task 2 has nothing left, the merge runs.
    let (a3, m3) = submit(&spec, &out, n, Some("sleep-ms:100"));
    let t3 = Instant::now();
    wait_gone(&[&a3, &m3], Duration::from_secs(120), &out);
    eprintln!("faults: step 3 (retry, merge) {:.1} s", t3.elapsed().as_secs_f64());
    assert!(merged.exists(), "no merged results\n{}", logs(&out));

    // Nothing lost, nothing run twice: one successful row per cell over the shard files, the
    // failed rows of step 1 kept beside them, and the merge equals an uninterrupted run.
    let rows = shard_rows(&out, n);
    let mut ok: Vec<&str> = rows.iter().filter(|r| r.is_ok()).map(|r| r.config_hash.as_str()).collect();
    ok.sort();
    let before_dedup = ok.len();
    ok.dedup();
    assert_eq!((before_dedup, ok.len()), (cells, cells), "a cell ran twice or is missing");
    let whole = d.join("whole");
    run(Command::new(bin())
        .args(["sweep", spec.to_str().unwrap(), "--out", whole.to_str().unwrap(), "--jobs", "2"])
        .args(["--torch-threads", "1", "--no-progress"])
        .env(FAKE, "sleep-ms:0"));
    assert_eq!(assert_same_rows(&merged, &whole.join("results.csv")), cells);
    eprintln!(
        "faults: {cells} cells, {n} tasks: task 1 cancelled mid-cell after {cancelled_at} cells, task 2 \
         requeued mid-cell; {failed} failed cells retried; merged == uninterrupted"
    );
}
