//! The audit driver: rounds of (plan a batch per arm → run it → refit), crash-safe and resumable.
//!
//! - **Rows**: every run is a sweep cell (the arm's template with the design's α and seed) run by
//!   the sweep's cell runner and appended to a [`ResultStore`]: the same rows as a sweep, so
//!   `crowdout report` and `report --merge` read them.
//! - **Plan file** (`steer_plan.jsonl`, beside the results): one JSON line per round, written with
//!   one `write(2)` and `fsync` *before* the round runs, listing its cells (arm, α, seed). A rerun
//!   first finishes the planned cells without a successful row, then plans the next round from
//!   the rows of all earlier rounds. A round depends only on earlier rounds' rows, so a crash and
//!   rerun gives the same design as an uninterrupted run. A torn last line is dropped.
//! - **Seeds**: run j of an arm (in plan order) trains with seed `seed_offset + j`, so every run is its own seed
//!   line: the runs are independent trainings, as the likelihood assumes. (Sharing seeds across
//!   α would be cheaper — the cell runner trains one no-collective baseline per seed line — but
//!   a design that places most later runs at new α's would then follow one seed's luck.)
//! - **Shards**: `--shard i/n` takes the arms whose index % n == i − 1 (the design is sequential
//!   within an arm, independent across arms), with its own results and plan files.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::analysis::{estimate_arm, ArmEstimate, ArmKey};
use super::design::{initial_alphas, narrow_enough, next_alphas, round_alpha};
use super::spec::SteerSpec;
use crate::sweep::run::run_one;
use crate::sweep::spec::Cell;
use crate::sweep::store::{ResultRow, ResultStore};
use crate::sweep::SweepError;

/// One planned run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCell {
    /// The arm: the `config_hash` of its template cell (α = 0, seed 0).
    pub arm: String,
    pub alpha: f64,
    pub seed: u64,
}

/// One line of the plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: usize,
    pub cells: Vec<PlannedCell>,
}

/// How to run the audit.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerOptions {
    /// Cells run in parallel (≥ 1).
    pub jobs: usize,
    /// libtorch threads per worker (None: cores / jobs).
    pub torch_threads: Option<i32>,
    /// `(i, n)`: only the arms whose index % n == i − 1.
    pub shard: Option<(usize, usize)>,
    pub progress: bool,
}

impl Default for SteerOptions {
    fn default() -> Self {
        SteerOptions { jobs: 1, torch_threads: None, shard: None, progress: false }
    }
}

/// What the audit did.
#[derive(Debug, Clone)]
pub struct SteerSummary {
    /// The estimates of this shard's arms.
    pub arms: Vec<ArmEstimate>,
    /// Rounds planned in total (earlier runs included), cells run now, cells run in all.
    pub rounds: usize,
    pub ran: usize,
    pub cells: usize,
    pub wall_s: f64,
}

/// The plan file of a results file: `results.csv` → `steer_plan.jsonl`,
/// `results.shard-1-of-2.csv` → `steer_plan.shard-1-of-2.jsonl`.
pub fn plan_path(results: &Path) -> PathBuf {
    let stem = results.file_stem().and_then(|s| s.to_str()).unwrap_or("results");
    let suffix = stem.strip_prefix("results").unwrap_or("");
    results.with_file_name(format!("steer_plan{suffix}.jsonl"))
}

/// Reads the plan file (missing: no rounds), truncating a torn last line.
pub fn read_plan(path: &Path) -> Result<Vec<Round>, SweepError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SweepError::Io { path: path.to_path_buf(), source }),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        eprintln!("{}: dropping a torn last line ({} bytes)", path.display(), bytes.len() - complete);
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
        f.set_len(complete as u64).map_err(|source| SweepError::Io { path: path.to_path_buf(), source })?;
    }
    let text = String::from_utf8_lossy(&bytes[..complete]);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let mut r = serde_json::from_str::<Round>(l).map_err(|e| SweepError::Store {
                path: path.to_path_buf(),
                message: format!("line {}: not a plan round: {e}", i + 1),
            })?;
            // The planned α's are three-digit decimals: read back as exactly the planned doubles
            // (JSON float parsing need not round-trip every double).
            for c in &mut r.cells {
                c.alpha = round_alpha(c.alpha);
            }
            Ok(r)
        })
        .collect()
}

/// Appends a round: one write of the whole line, then fsync.
fn append_round(path: &Path, round: &Round) -> Result<(), SweepError> {
    let io = |source| SweepError::Io { path: path.to_path_buf(), source };
    let mut line = serde_json::to_vec(round).map_err(|e| SweepError::Other(e.to_string()))?;
    line.push(b'\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    f.write_all(&line).map_err(io)?;
    f.sync_data().map_err(io)
}

/// An arm: its template cell and its key in rows.
struct Arm {
    template: Cell,
    hash: String,
    key: ArmKey,
}

impl Arm {
    fn cell(&self, alpha: f64, seed: u64) -> Cell {
        let mut c = self.template.clone();
        c.alpha = alpha;
        c.seed = seed;
        c
    }
}

/// Runs (or resumes) the audit of `spec` into `store`, with its plan file at `plan`; `runner`
/// runs one cell (the real one is [`crate::sweep::cell::run_cell`]).
pub fn run_steer(
    spec: &SteerSpec,
    store: &ResultStore,
    plan: &Path,
    opts: &SteerOptions,
    runner: &(dyn Fn(&Cell) -> Result<ResultRow, String> + Sync),
) -> Result<SteerSummary, SweepError> {
    let t0 = Instant::now();
    if opts.jobs == 0 {
        return Err(SweepError::Other("--jobs must be ≥ 1".into()));
    }
    if opts.torch_threads.is_some_and(|t| t < 1) {
        return Err(SweepError::Other("--torch-threads must be ≥ 1".into()));
    }
    let st = &spec.steer;
    let [lo, hi] = st.alpha_range;
    let arms: Vec<Arm> = spec
        .arms()
        .into_iter()
        .enumerate()
        .filter(|(k, _)| opts.shard.is_none_or(|(i, n)| k % n == i - 1))
        .map(|(_, c)| Arm { hash: c.config_hash(), key: ArmKey::of(&ResultRow::from_cell(&c)), template: c })
        .collect();
    let mut rounds = read_plan(plan)?;
    let threads = opts.torch_threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        (cores / opts.jobs).max(1) as i32
    });
    tch::set_num_threads(threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .thread_name(|i| format!("steer-worker-{i}"))
        .start_handler(move |_| tch::set_num_threads(threads))
        .build()
        .map_err(|e| SweepError::Other(format!("cannot start {} worker threads: {e}", opts.jobs)))?;
    let budget = (arms.len() * st.max_cells) as u64;
    let pb = if opts.progress {
        ProgressBar::with_draw_target(Some(budget), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} runs (budget)  {msg}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    let mut ran = 0;
    loop {
        // Planned cells of this shard's arms, per arm.
        let mut planned: BTreeMap<&str, Vec<(f64, u64)>> = BTreeMap::new();
        for r in &rounds {
            for c in &r.cells {
                planned.entry(c.arm.as_str()).or_default().push((c.alpha, c.seed));
            }
        }
        let done = store.done_hashes();
        let pending: Vec<Cell> = arms
            .iter()
            .flat_map(|a| {
                planned.get(a.hash.as_str()).into_iter().flatten().map(move |&(al, s)| a.cell(al, s))
            })
            .filter(|c| !done.contains(&c.config_hash()))
            .collect();
        let n_planned: usize = arms.iter().map(|a| planned.get(a.hash.as_str()).map_or(0, Vec::len)).sum();
        pb.set_position((n_planned - pending.len()) as u64);
        if !pending.is_empty() {
            pb.set_message(format!("round {}: {} runs", rounds.len(), pending.len()));
            let failed = std::sync::atomic::AtomicUsize::new(0);
            pool.install(|| {
                pending.par_iter().try_for_each(|cell| {
                    let row = run_one(cell, runner);
                    if !row.is_ok() {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        pb.println(format!("FAILED α={} seed={}: {}", cell.alpha, cell.seed, row.error));
                    }
                    store.append(&row)?;
                    pb.inc(1);
                    Ok::<(), SweepError>(())
                })
            })?;
            ran += pending.len();
            let failed = failed.into_inner();
            if failed > 0 {
                pb.abandon();
                return Err(SweepError::Other(format!(
                    "{failed} run(s) failed (rows with `error` set in {}); rerun the same command to retry them",
                    store.path().display()
                )));
            }
            continue;
        }
        // Every planned cell is done: plan the next round from all rows so far.
        let rows = store.rows()?;
        let mut next = Vec::new();
        for a in &arms {
            let mine: Vec<(f64, u64)> = planned.get(a.hash.as_str()).cloned().unwrap_or_default();
            let alphas: Vec<f64> = if mine.is_empty() {
                initial_alphas(lo, hi, st.init)
                    .into_iter()
                    .flat_map(|al| std::iter::repeat_n(al, st.init_seeds))
                    .collect()
            } else if mine.len() >= st.max_cells {
                Vec::new()
            } else {
                let est = estimate_for(a, &mine, &rows, spec);
                let fits = est.fits();
                if narrow_enough(&fits, st.max_width_ratio) || fits.is_empty() {
                    Vec::new()
                } else {
                    next_alphas(&fits, lo, hi, st.batch.min(st.max_cells - mine.len()))
                }
            };
            // Run j of the arm (in plan order) trains with seed offset + j: each its own seed line.
            for (j, al) in alphas.into_iter().enumerate() {
                let seed = st.seed_offset.saturating_add((mine.len() + j) as u64);
                next.push(PlannedCell { arm: a.hash.clone(), alpha: al, seed });
            }
        }
        if next.is_empty() {
            break;
        }
        let round = Round { round: rounds.len(), cells: next };
        append_round(plan, &round)?;
        rounds.push(round);
    }
    pb.finish_and_clear();
    // Final estimates, from this shard's planned cells.
    let rows = store.rows()?;
    let mut cells = 0;
    let mut ests = Vec::new();
    for a in &arms {
        let mine: Vec<(f64, u64)> = rounds
            .iter()
            .flat_map(|r| r.cells.iter())
            .filter(|c| c.arm == a.hash)
            .map(|c| (c.alpha, c.seed))
            .collect();
        cells += mine.len();
        ests.push(estimate_for(a, &mine, &rows, spec));
    }
    Ok(SteerSummary { arms: ests, rounds: rounds.len(), ran, cells, wall_s: t0.elapsed().as_secs_f64() })
}

/// The arm's estimate from the successful rows of its planned cells.
fn estimate_for(arm: &Arm, mine: &[(f64, u64)], rows: &[ResultRow], spec: &SteerSpec) -> ArmEstimate {
    let hashes: HashSet<String> = mine.iter().map(|&(al, s)| arm.cell(al, s).config_hash()).collect();
    let latest = crate::sweep::store::latest_per_cell(rows);
    let mine: Vec<&ResultRow> =
        latest.iter().filter(|r| r.is_ok() && hashes.contains(&r.config_hash)).collect();
    estimate_arm(arm.key.clone(), &mine, &spec.steer.targets, spec.steer.threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::spec::Privacy;
    use rand::{RngExt, SeedableRng};

    const SPEC: &str = r#"name = "sim"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["c"]
privacy = ["none", "sigma=1"]
clip = [1.0]
[steer]
alpha_range = [0.002, 0.2]
max_cells = 28
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

    fn spec() -> SteerSpec {
        SteerSpec::from_toml_str(SPEC, Path::new("sim.toml")).unwrap()
    }

    /// True α₅₀ of the simulated arms.
    fn true_alpha50(p: Privacy) -> f64 {
        if p == Privacy::NonPrivate {
            0.01
        } else {
            0.05
        }
    }

    /// A simulated runner: each run is steered (success 0.95) with probability F(4·ln(α/α₅₀)),
    /// else unsteered (0.02); baseline 0.02, so τ = 0.51 and E[S] crosses ½ slightly above α₅₀.
    /// The randomness is a function of (arm, α, seed, rep): deterministic per cell.
    fn sim_runner(rep: u64) -> impl Fn(&Cell) -> Result<ResultRow, String> + Sync {
        move |c: &Cell| {
            let mut r = ResultRow::from_cell(c);
            let h = u64::from_str_radix(&c.config_hash(), 16).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(h ^ rep.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let p = 1.0 / (1.0 + (-4.0 * (c.alpha / true_alpha50(c.privacy)).ln()).exp());
            r.success = Some(if rng.random::<f64>() < p { 0.95 } else { 0.02 });
            r.baseline_success = Some(0.02);
            Ok(r)
        }
    }

    #[test]
    fn plan_path_follows_the_results_file() {
        assert_eq!(plan_path(Path::new("o/results.csv")), PathBuf::from("o/steer_plan.jsonl"));
        assert_eq!(
            plan_path(Path::new("o/results.shard-1-of-2.csv")),
            PathBuf::from("o/steer_plan.shard-1-of-2.jsonl")
        );
    }

    /// The adaptive design on simulated Bernoulli arms: within the budget, each arm's α₅₀
    /// interval covers the truth in most replications (nominal 95 %; ≥ 80 % of 2 × 12 arm-runs
    /// asked, the sequential design and the small budget cost some coverage) and the estimate is
    /// within a factor 2 of the truth in ≥ 90 %.
    #[test]
    fn adaptive_design_recovers_known_alpha50_on_simulated_arms() {
        let s = spec();
        let (mut covered, mut close, mut total) = (0, 0, 0);
        for rep in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let store = ResultStore::open(dir.path().join("results.csv")).unwrap();
            let plan = dir.path().join("steer_plan.jsonl");
            let sum = run_steer(&s, &store, &plan, &SteerOptions::default(), &sim_runner(rep)).unwrap();
            for (a, tmpl) in sum.arms.iter().zip(s.arms()) {
                let truth = true_alpha50(tmpl.privacy);
                let c = a.alpha50.as_ref().unwrap();
                assert!(a.cells <= s.steer.max_cells);
                covered += usize::from(c.lo <= truth && truth <= c.hi);
                close += usize::from((c.alpha / truth).ln().abs() < 2f64.ln());
                total += 1;
            }
        }
        assert!(covered as f64 >= 0.8 * total as f64, "covered {covered}/{total}");
        assert!(close as f64 >= 0.9 * total as f64, "close {close}/{total}");
    }

    #[test]
    fn a_rerun_resumes_after_a_crash_with_the_same_design() {
        let s = spec();
        let full = tempfile::tempdir().unwrap();
        let store = ResultStore::open(full.path().join("results.csv")).unwrap();
        let plan = full.path().join("steer_plan.jsonl");
        let a = run_steer(&s, &store, &plan, &SteerOptions::default(), &sim_runner(0)).unwrap();
        // A "crash": a runner that panics after a few cells leaves failed rows and a partial round.
        let crashed = tempfile::tempdir().unwrap();
        let store2 = ResultStore::open(crashed.path().join("results.csv")).unwrap();
        let plan2 = crashed.path().join("steer_plan.jsonl");
        let count = std::sync::atomic::AtomicUsize::new(0);
        let ok = sim_runner(0);
        let flaky = |c: &Cell| {
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 11 {
                panic!("simulated crash");
            }
            ok(c)
        };
        let e = run_steer(&s, &store2, &plan2, &SteerOptions::default(), &flaky).unwrap_err();
        assert!(e.to_string().contains("rerun"), "{e}");
        // A torn plan line (a crash while writing the next round) is dropped.
        let mut f = OpenOptions::new().append(true).open(&plan2).unwrap();
        f.write_all(b"{\"round\": 9, \"cel").unwrap();
        drop(f);
        let b = run_steer(&s, &store2, &plan2, &SteerOptions::default(), &sim_runner(0)).unwrap();
        assert_eq!(read_plan(&plan).unwrap(), read_plan(&plan2).unwrap(), "the same design");
        assert_eq!(a.cells, b.cells);
        assert!(b.ran < b.cells, "the rerun ran only what was missing");
        for (x, y) in a.arms.iter().zip(&b.arms) {
            assert_eq!(x.alpha50.as_ref().unwrap(), y.alpha50.as_ref().unwrap());
        }
        // Done is done: a third run runs nothing.
        let c = run_steer(&s, &store2, &plan2, &SteerOptions::default(), &sim_runner(0)).unwrap();
        assert_eq!(c.ran, 0);
        // Each planned cell has exactly one successful row (no duplicates, none lost).
        let ok_rows: Vec<ResultRow> = store2.rows().unwrap().into_iter().filter(|r| r.is_ok()).collect();
        let hashes: HashSet<&str> = ok_rows.iter().map(|r| r.config_hash.as_str()).collect();
        assert_eq!((ok_rows.len(), hashes.len()), (b.cells, b.cells));
    }

    #[test]
    fn shards_split_the_arms() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for i in 1..=2 {
            let store = ResultStore::open(dir.path().join(format!("results.shard-{i}-of-2.csv"))).unwrap();
            let plan = plan_path(store.path());
            let opts = SteerOptions { shard: Some((i, 2)), ..Default::default() };
            let sum = run_steer(&s, &store, &plan, &opts, &sim_runner(1)).unwrap();
            assert_eq!(sum.arms.len(), 1);
            all.push(sum.arms[0].key.privacy.clone());
        }
        assert_eq!(all, vec!["none".to_string(), "sigma=1".to_string()]);
    }
}
