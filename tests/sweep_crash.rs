//! A sweep killed with SIGKILL mid-run and rerun ends with exactly the rows of an uninterrupted
//! run: none missing, none duplicated, no torn line. Uses the fake runner test hook
//! (`CROWDOUT_FAKE_RUNNER`), so no training happens.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crowdout::sweep::store::{read_results, ResultRow};

const SPEC: &str = r#"
name = "crash"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["trigger=patch:size=3,target=0,strategy=feature-label"]
alpha = [0.0, 0.01, 0.05, 0.1, 0.2]
privacy = ["none", "sigma=0", "eps=1", "eps=8"]
clip = [1.0, 5.0]
seed = [0, 1]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

fn sweep(spec: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.arg("sweep")
        .arg(spec)
        .arg("--out")
        .arg(out)
        .args(["--jobs", "2", "--torch-threads", "1", "--no-progress"])
        .env("CROWDOUT_FAKE_RUNNER", "sleep-ms:30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn data_lines(p: &Path) -> usize {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count().saturating_sub(1)).unwrap_or(0)
}

fn normalised(rows: Vec<ResultRow>) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = rows
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
fn sigkill_then_rerun_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let n_cells = crowdout::sweep::SweepSpec::from_path(&spec).unwrap().cells().len();
    assert_eq!(n_cells, 5 * 2 * (1 + 3 * 2));

    // Reference: an uninterrupted run.
    let reference_out = dir.path().join("ref");
    let st = sweep(&spec, &reference_out).status().unwrap();
    assert!(st.success());
    let reference = normalised(read_results(reference_out.join("results.csv")).unwrap());
    assert_eq!(reference.len(), n_cells);

    // Interrupted runs: kill at a few points, then finish.
    let out: PathBuf = dir.path().join("killed");
    let csv = out.join("results.csv");
    let mut kills = 0;
    for target in [3usize, 20, 45] {
        let mut child = sweep(&spec, &out).spawn().unwrap();
        let t0 = Instant::now();
        loop {
            if data_lines(&csv) >= target || t0.elapsed() > Duration::from_secs(60) {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // Whatever is on disk must be complete lines only.
        let bytes = std::fs::read(&csv).unwrap();
        if bytes.last() != Some(&b'\n') {
            eprintln!("torn line left on disk after kill (open must repair it)");
        }
    }
    assert!(kills >= 2, "the sweep finished before it could be killed");
    let before = data_lines(&csv);
    assert!(before < n_cells, "kills came too late: {before} rows");
    let outp = sweep(&spec, &out).output().unwrap();
    assert!(outp.status.success(), "{}", String::from_utf8_lossy(&outp.stderr));
    let stderr = String::from_utf8_lossy(&outp.stderr);
    assert!(stderr.contains(&format!("ran {} (0 failed)", n_cells - before)), "{stderr}");

    let bytes = std::fs::read(&csv).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    let got = normalised(read_results(&csv).unwrap());
    assert_eq!(got.len(), n_cells, "duplicates or missing rows");
    assert_eq!(got, reference);

    // Resume after completion runs nothing.
    let outp = sweep(&spec, &out).output().unwrap();
    assert!(outp.status.success());
    let stderr = String::from_utf8_lossy(&outp.stderr);
    assert!(stderr.contains(&format!("ran 0 (0 failed), skipped {n_cells}")), "{stderr}");
    assert_eq!(data_lines(&csv), n_cells);
}
