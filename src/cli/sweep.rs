//! `crowdout sweep <spec.toml>`: run a grid into `<out>/results.csv`, resumably.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crowdout::sweep::fake::{FakeRunner, FAKE_RUNNER_ENV};
use crowdout::sweep::run::shard_cells;
use crowdout::sweep::store::read_results;
use crowdout::sweep::{cell, parse_shard, run_sweep, ResultStore, RunOptions, SweepSpec};

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// The sweep spec (TOML; see docs/sweep.md).
    pub spec: PathBuf,
    /// Output folder [default: the spec's [output] dir, else results/<name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cells run in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// libtorch threads per worker [default: cores / jobs, at least 1].
    #[arg(long)]
    pub torch_threads: Option<i32>,
    /// Run only shard i of n (1-based): cells whose index % n == i-1. Writes
    /// results.shard-<i>-of-<n>.csv; merge with `crowdout report --merge`.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// List the cells (index, hash, done/todo, settings) and their count; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The results file of a (shard of a) sweep inside `out`.
pub fn results_path(out: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => out.join("results.csv"),
        Some((i, n)) => out.join(format!("results.shard-{i}-of-{n}.csv")),
    }
}

/// Writes `bytes` to `path` via a temporary file and rename (shards may share the folder).
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let spec = SweepSpec::from_path(&args.spec)?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    // TEST HOOK (see crowdout::sweep::fake): a deterministic fake runner instead of training.
    let fake: Option<FakeRunner> = match std::env::var(FAKE_RUNNER_ENV) {
        Ok(v) => Some(v.parse().map_err(anyhow::Error::msg)?),
        Err(_) => None,
    };
    if fake.is_none() {
        let text = std::fs::read_to_string(&args.spec)
            .with_context(|| format!("reading {}", args.spec.display()))?;
        spec.check_runnable(&text, &args.spec)?;
    }
    let out = args.out.clone().unwrap_or_else(|| spec.output_dir());
    let results = results_path(&out, shard);

    if args.dry_run {
        let done = if results.exists() {
            read_results(&results)?.into_iter().filter(|r| r.is_ok()).map(|r| r.config_hash).collect()
        } else {
            std::collections::HashSet::new()
        };
        let all = spec.cells();
        let total = all.len();
        let index_of: std::collections::HashMap<String, usize> =
            all.iter().enumerate().map(|(i, c)| (c.config_hash(), i)).collect();
        let mine = shard_cells(all, shard);
        let mut todo = 0;
        println!("index\tconfig_hash\tstatus\tdataset\tmodel\tcollective\talpha\tprivacy\tclip\tseed");
        for c in &mine {
            let h = c.config_hash();
            let status = if done.contains(&h) { "done" } else { "todo" };
            if status == "todo" {
                todo += 1;
            }
            println!(
                "{}\t{h}\t{status}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                index_of.get(&h).copied().unwrap_or(0),
                c.dataset,
                c.model,
                c.collective.name,
                c.alpha,
                c.privacy,
                c.clip.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                c.seed
            );
        }
        println!(
            "{} cells in the grid, {} in this shard, {} to run, {} done ({})",
            total,
            mine.len(),
            todo,
            mine.len() - todo,
            results.display()
        );
        return Ok(());
    }

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let spec_copy = out.join("spec.toml");
    let spec_text = std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    if let Ok(old) = std::fs::read(&spec_copy) {
        if old != spec_text {
            eprintln!(
                "note: {} differs from {}; replacing it (rows already in {} keep their own \
                 config columns)",
                spec_copy.display(),
                args.spec.display(),
                results.display()
            );
        }
    }
    write_atomic(&spec_copy, &spec_text)?;
    let prov = crowdout::provenance::Provenance::collect();
    write_atomic(&out.join("provenance.json"), serde_json::to_string_pretty(&prov)?.as_bytes())?;

    let store = ResultStore::open(&results)?;
    let opts =
        RunOptions { jobs: args.jobs, torch_threads: args.torch_threads, shard, progress: !args.no_progress };
    let summary = match &fake {
        Some(f) => {
            eprintln!("warning: {FAKE_RUNNER_ENV} is set: using the FAKE test runner, no training");
            run_sweep(&spec, &store, &opts, &|c| f.run(c))?
        }
        None => run_sweep(&spec, &store, &opts, &cell::run_cell)?,
    };
    eprintln!(
        "{}: {} cells in the grid, {} in this shard; ran {} ({} failed), skipped {} already done, \
         in {:.1} s",
        results.display(),
        summary.grid_cells,
        summary.shard_cells,
        summary.ran,
        summary.failed,
        summary.skipped,
        summary.wall_s
    );
    if summary.failed > 0 {
        anyhow::bail!(
            "{} cell(s) failed (rows with `error` set in {}); rerun the same command to retry them",
            summary.failed,
            results.display()
        );
    }
    Ok(())
}
