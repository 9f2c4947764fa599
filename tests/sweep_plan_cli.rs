//! Planning and submitting without a cluster: `sweep --dry-run` reports the cell count, shard sizes,
//! per-shard progress and the cost per cell; `sweep --slurm --dry-run` prints the two scripts and
//! writes nothing; `sweep --slurm` writes them and submits them with `sbatch` (here a stand-in
//! `sbatch` on PATH that records its arguments). Uses the fake runner test hook. The real Slurm
//! tests are tests/slurm_array.rs (`make test-slurm`).

use std::path::Path;
use std::process::{Command, Output};

const SPEC: &str = r#"
name = "plan"
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

fn crowdout(args: &[&str], path_prefix: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.args(args).env("CROWDOUT_FAKE_RUNNER", "sleep-ms:0");
    if let Some(p) = path_prefix {
        c.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
    }
    c.output().unwrap()
}

fn stdout_ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn dry_run_shows_shards_progress_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let (s, out) = (spec.to_str().unwrap(), dir.path().join("o"));
    let o = out.to_str().unwrap();
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o, "--dry-run", "--shards", "5"], None));
    assert!(text.contains("36 cells in the grid, 36 in this shard, 36 to run, 0 done"), "{text}");
    assert!(text.contains("--shards 5: shards 1: 8 cells, 2–5: 7 cells"), "{text}");
    assert!(text.contains("cost per cell: unknown"), "{text}");
    assert!(!out.exists(), "a dry run writes nothing");
    stdout_ok(&crowdout(&["sweep", s, "--out", o, "--shard", "2/5", "--no-progress"], None));
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o, "--dry-run", "--shards", "5"], None));
    assert!(text.contains("shard files present: 1 of 5; 7 cells done, 29 to run"), "{text}");
    assert!(text.lines().any(|l| l == "2/5\t7\t7\t0"), "{text}");
    assert!(text.contains("from 7 finished rows"), "{text}");
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o, "--dry-run", "--shard", "2/5"], None));
    assert!(text.contains("36 cells in the grid, 7 in this shard, 0 to run, 7 done"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("\tdone\t")).count(), 7);
    // Cells done in the merged results.csv beside the shard files count as done for every shard
    // (the merge job keeps those rows), so a shard does not run them again.
    stdout_ok(&crowdout(&["sweep", s, "--out", o, "--no-progress"], None));
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o, "--dry-run", "--shards", "5"], None));
    assert!(text.contains("36 cells done, 0 to run"), "{text}");
    let o3 = crowdout(&["sweep", s, "--out", o, "--shard", "1/5", "--no-progress"], None);
    stdout_ok(&o3);
    let e = String::from_utf8_lossy(&o3.stderr);
    assert!(e.contains("ran 0 (0 failed), skipped 8 already done"), "{e}");
}

#[test]
fn large_grids_plan_without_listing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("big.toml");
    let alphas: Vec<String> = (0..300).map(|i| format!("{:.4}", i as f64 / 1000.0)).collect();
    let seeds: Vec<String> = (0..400).map(|i| i.to_string()).collect();
    let text = SPEC
        .replace("alpha = [0.0, 0.01, 0.1]", &format!("alpha = [{}]", alphas.join(", ")))
        .replace("seed = [0, 1, 2]", &format!("seed = [{}]", seeds.join(", ")));
    std::fs::write(&spec, text).unwrap();
    let (s, o) = (spec.to_str().unwrap(), dir.path().join("o"));
    let cells = 2 * 2 * 300 * 400;
    let t0 = std::time::Instant::now();
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o.to_str().unwrap(), "--dry-run"], None));
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        text.contains(&format!("{cells} cells in the grid, {cells} in this shard, {cells} to run")),
        "{text}"
    );
    assert!(text.contains("cells not listed"), "{text}");
    assert!(text.lines().count() < 10, "{text}");
    // 480,000 cells: well under a second here; generous for a loaded CI machine.
    assert!(secs < 20.0, "dry run of {cells} cells took {secs:.1} s");
    let text = stdout_ok(&crowdout(
        &["sweep", s, "--out", o.to_str().unwrap(), "--dry-run", "--shard", "3/7"],
        None,
    ));
    assert!(
        text.contains(&format!("{cells} cells in the grid, {} in this shard", (cells - 2usize).div_ceil(7))),
        "{text}"
    );
}

#[test]
fn slurm_dry_run_prints_the_scripts_and_submit_uses_sbatch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = d.join("o");
    let (s, o) = (spec.to_str().unwrap(), out.to_str().unwrap());
    let gpu = [
        "--slurm",
        "--shards",
        "4",
        "--partition",
        "gpu",
        "--time",
        "01:00:00",
        "--gres",
        "gpu:1",
        "--device",
        "cuda",
        "--cpus-per-task",
        "4",
        "--array-max",
        "2",
        "--sbatch-arg=--account=proj",
    ];
    let mut args = vec!["sweep", s, "--out", o, "--dry-run"];
    args.extend(gpu);
    let text = stdout_ok(&crowdout(&args, None));
    for want in [
        "#SBATCH --array=1-4%2",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --requeue",
        "--shard \"${SLURM_ARRAY_TASK_ID}/4\" --jobs 1 --torch-threads 4 --device cuda --no-progress",
        "\"${PREVIOUS[@]}\" \"$OUT\"/results.shard-{1..4}-of-4.csv --out \"$OUT\"/results.csv",
        "would run: sbatch --parsable",
        "--dependency=afterok:<array job id> --kill-on-invalid-dep=yes",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    assert!(!out.exists(), "--slurm --dry-run writes nothing");

    let o2 = crowdout(&["sweep", s, "--out", o, "--slurm"], None);
    assert!(!o2.status.success());
    assert!(String::from_utf8_lossy(&o2.stderr).contains("--shards"));

    // Submission through a stand-in sbatch that logs its arguments and answers job ids.
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = d.join("sbatch.log");
    let fake = format!(
        "#!/bin/sh\necho \"$@\" >> {log}\nn=$(wc -l < {log})\nif [ \"$n\" = 1 ]; then echo 4242; else echo '4243;test'; fi\n",
        log = log.display()
    );
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = stdout_ok(&crowdout(&["sweep", s, "--out", o, "--slurm", "--shards", "40"], Some(&bin)));
    assert!(text.contains("array job 4242: 36 tasks"), "{text}");
    assert!(text.contains("merge job 4243: after every task succeeded"), "{text}");
    assert!(text.contains(&format!("{}", out.join("results.csv").display())), "{text}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].starts_with("--parsable") && calls[0].ends_with("slurm/array.sbatch"), "{calls:?}");
    assert!(calls[1].contains("--dependency=afterok:4242 --kill-on-invalid-dep=yes"), "{calls:?}");
    let array = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    assert!(array.contains("#SBATCH --array=1-36\n") && array.contains("--device cpu"), "{array}");
    assert_eq!(std::fs::read_to_string(out.join("slurm/spec.toml")).unwrap(), SPEC, "the spec is frozen");
    assert!(out.join("slurm/logs").is_dir());
}
