//! The sweep driver: shard selection, resume, a rayon pool of `jobs` workers, progress, and one
//! store append per finished cell.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use super::plan::Plan;
use super::spec::{Cell, SweepSpec};
use super::store::{ResultRow, ResultStore, SCHEMA_VERSION};
use super::SweepError;

/// How to run a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Cells run in parallel (≥ 1).
    pub jobs: usize,
    /// libtorch intra-op threads per worker; None: max(1, cores / jobs).
    pub torch_threads: Option<i32>,
    /// `(i, n)`, 1-based: run the cells whose index % n == i − 1.
    pub shard: Option<(usize, usize)>,
    /// Draw a progress bar with ETA on stderr.
    pub progress: bool,
    /// Cells done in another results file, skipped like the store's own (a shard skips the cells
    /// of the merged `results.csv` beside it).
    pub done_elsewhere: HashSet<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 1,
            torch_threads: None,
            shard: None,
            progress: false,
            done_elsewhere: HashSet::new(),
        }
    }
}

impl RunOptions {
    /// The torch threads each worker gets: the explicit value, else cores / jobs (at least 1).
    pub fn threads_per_worker(&self) -> i32 {
        self.torch_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (cores / self.jobs.max(1)).max(1) as i32
        })
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    /// Cells in the whole grid.
    pub grid_cells: usize,
    /// Cells in this shard (= grid_cells without a shard).
    pub shard_cells: usize,
    /// Cells skipped because the store already has a successful row for them.
    pub skipped: usize,
    /// Cells run now, and how many of those failed.
    pub ran: usize,
    pub failed: usize,
    pub wall_s: f64,
}

/// Parses `--shard i/n` (1 ≤ i ≤ n).
pub fn parse_shard(s: &str) -> Result<(usize, usize), SweepError> {
    let bad = |message: &str| SweepError::Shard { value: s.to_string(), message: message.to_string() };
    let (i, n) = s.split_once('/').ok_or_else(|| bad("expected i/n, e.g. 1/4"))?;
    let i: usize = i.trim().parse().map_err(|_| bad("i is not a positive integer"))?;
    let n: usize = n.trim().parse().map_err(|_| bad("n is not a positive integer"))?;
    if n == 0 || i == 0 || i > n {
        return Err(bad("need 1 ≤ i ≤ n (shards are 1-based)"));
    }
    Ok((i, n))
}

/// The cells of shard `(i, n)`: those whose grid index % n == i − 1 (all cells without a shard).
pub fn shard_cells(cells: Vec<Cell>, shard: Option<(usize, usize)>) -> Vec<Cell> {
    match shard {
        None => cells,
        Some((i, n)) => {
            cells.into_iter().enumerate().filter(|(k, _)| k % n == i - 1).map(|(_, c)| c).collect()
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs one cell through `runner`, turning an error or a panic into a failed row, and making
/// sure the config columns and hash are the cell's own.
pub fn run_one(cell: &Cell, runner: &(dyn Fn(&Cell) -> Result<ResultRow, String> + Sync)) -> ResultRow {
    let t0 = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| runner(cell)))
        .unwrap_or_else(|p| Err(format!("panic: {}", panic_message(p.as_ref()))));
    let wall = t0.elapsed().as_secs_f64();
    let mut row = match result {
        Ok(mut row) => {
            let expected = ResultRow::from_cell(cell);
            if row.config_hash != expected.config_hash {
                ResultRow::failed(
                    cell,
                    &format!(
                        "runner returned a row for config_hash {} instead of {}",
                        row.config_hash, expected.config_hash
                    ),
                )
            } else {
                row.schema_version = SCHEMA_VERSION;
                row
            }
        }
        Err(e) => ResultRow::failed(cell, &e),
    };
    if row.wall_s.is_none() {
        row.wall_s = Some(wall);
    }
    // The worker's libtorch thread count: the same seed gives the same bits only for the same count.
    row.torch_threads = Some(tch::get_num_threads());
    row
}

/// Runs every cell of `spec` (in `opts.shard`) not yet done in `store`, `opts.jobs` at a time,
/// appending one row per cell as it finishes. Failed cells are recorded with `error` set and
/// retried on the next run. Stops at the first store (I/O) error.
pub fn run_sweep(
    spec: &SweepSpec,
    store: &ResultStore,
    opts: &RunOptions,
    runner: &(dyn Fn(&Cell) -> Result<ResultRow, String> + Sync),
) -> Result<SweepSummary, SweepError> {
    let t0 = Instant::now();
    if opts.jobs == 0 {
        return Err(SweepError::Other("--jobs must be ≥ 1".into()));
    }
    if let Some(t) = opts.torch_threads {
        if t < 1 {
            return Err(SweepError::Other("--torch-threads must be ≥ 1".into()));
        }
    }
    if let Some((i, n)) = opts.shard {
        if n == 0 || i == 0 || i > n {
            return Err(SweepError::Shard {
                value: format!("{i}/{n}"),
                message: "need 1 ≤ i ≤ n (shards are 1-based)".into(),
            });
        }
    }
    // Index arithmetic over the grid: this shard's cells are built (and hashed) one by one, never
    // the whole grid's.
    let plan = Plan::new(spec)?;
    let grid_cells = plan.len();
    let done = store.done_hashes();
    let mine: Vec<usize> = plan.indices(opts.shard).collect();
    let shard_cells = mine.len();
    let todo: Vec<usize> = mine
        .into_par_iter()
        .map_init(String::new, |buf, k| (k, plan.config_hash_with(k, buf)))
        .filter(|(_, h)| !done.contains(h) && !opts.done_elsewhere.contains(h))
        .map(|(k, _)| k)
        .collect();
    drop(done);
    let skipped = shard_cells - todo.len();

    let threads = opts.threads_per_worker();
    tch::set_num_threads(threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .thread_name(|i| format!("sweep-worker-{i}"))
        .start_handler(move |_| tch::set_num_threads(threads))
        .build()
        .map_err(|e| SweepError::Other(format!("cannot start {} worker threads: {e}", opts.jobs)))?;

    let pb = if opts.progress {
        ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} cells  ETA {eta_precise}  {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let result = pool.install(|| {
        todo.par_iter().try_for_each(|&k| {
            let cell = &plan.cell(k);
            let row = run_one(cell, runner);
            if !row.is_ok() {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                pb.suspend(|| {
                    eprintln!(
                        "cell {} ({} {} alpha={} {} seed={}) failed: {}",
                        row.config_hash,
                        cell.dataset,
                        cell.model,
                        cell.alpha,
                        cell.privacy,
                        cell.seed,
                        row.error
                    )
                });
            }
            store.append(&row)?;
            pb.inc(1);
            Ok::<(), SweepError>(())
        })
    });
    pb.finish_and_clear();
    result?;
    Ok(SweepSummary {
        grid_cells,
        shard_cells,
        skipped,
        ran: todo.len(),
        failed: failed.into_inner(),
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fake::FakeRunner;
    use std::path::Path;

    fn spec() -> SweepSpec {
        let text = r#"
name = "r"
[grid]
dataset = ["d"]
model = ["m"]
collectives = ["c"]
alpha = [0.0, 0.01, 0.1]
privacy = ["none", "eps=1", "eps=8"]
clip = [1.0]
seed = [0, 1]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;
        SweepSpec::from_toml_str(text, Path::new("r.toml")).unwrap()
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("1/2").unwrap(), (1, 2));
        assert_eq!(parse_shard(" 3 / 3 ").unwrap(), (3, 3));
        for bad in ["0/2", "3/2", "1/0", "x/2", "1", "1/2/3"] {
            let e = parse_shard(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn shards_partition_the_grid() {
        let cells = spec().cells();
        let mut union: Vec<String> =
            (1..=4).flat_map(|i| shard_cells(cells.clone(), Some((i, 4)))).map(|c| c.config_hash()).collect();
        union.sort();
        let mut all: Vec<String> = cells.iter().map(|c| c.config_hash()).collect();
        all.sort();
        assert_eq!(union, all);
    }

    #[test]
    fn resume_runs_nothing_twice_and_retries_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::open(dir.path().join("r.csv")).unwrap();
        let s = spec();
        let n = s.cells().len();
        let failing = FakeRunner { sleep_ms: 0, fail_seed: Some(1) };
        let opts = RunOptions { jobs: 3, ..Default::default() };
        let sum = run_sweep(&s, &store, &opts, &|c| failing.run(c)).unwrap();
        assert_eq!((sum.ran, sum.failed, sum.skipped), (n, n / 2, 0));
        let ok = FakeRunner::default();
        let sum = run_sweep(&s, &store, &opts, &|c| ok.run(c)).unwrap();
        assert_eq!((sum.ran, sum.failed, sum.skipped), (n / 2, 0, n / 2));
        let sum = run_sweep(&s, &store, &opts, &|c| ok.run(c)).unwrap();
        assert_eq!((sum.ran, sum.skipped), (0, n));
        assert_eq!(store.rows().unwrap().len(), n + n / 2);
    }

    #[test]
    fn panics_and_wrong_rows_become_failed_rows() {
        let s = spec();
        let c = &s.cells()[0];
        let r = run_one(c, &|_| panic!("kaboom"));
        assert!(r.error.contains("kaboom") && r.config_hash == c.config_hash());
        let other = s.cells()[1].clone();
        let r = run_one(c, &move |_| Ok(ResultRow::from_cell(&other)));
        assert!(r.error.contains("instead of"));
    }
}
