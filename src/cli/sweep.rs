//! `crowdout sweep <spec.toml>`: run a grid into `<out>/results.csv`, resumably; `--dry-run` plans
//! it (cells, shards, cost); `--slurm` submits it as a job array plus a merge job.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use crowdout::device::DeviceChoice;
use crowdout::sweep::fake::{FakeRunner, FAKE_RUNNER_ENV};
use crowdout::sweep::finished::{results_files, Finished};
use crowdout::sweep::plan::{shard_size, Plan};
use crowdout::sweep::slurm::{parse_job_id, SlurmOptions, SlurmPaths};
use crowdout::sweep::{cell, parse_shard, run_sweep, ResultStore, RunOptions, SweepSpec};

/// A dry run lists every cell only up to this many in the shard (more with --list).
const LIST_LIMIT: usize = 1000;

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
    /// Plan only: the cell count, the shard sizes, done/todo and the estimated cost per cell from
    /// the rows already in the output folder; lists the cells (index, hash, done/todo, settings)
    /// when the shard has at most 1000 (see --list). With --slurm: print the scripts, submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: list every cell, however many.
    #[arg(long, requires = "dry_run")]
    pub list: bool,
    /// Split the grid into n shards: with --slurm, one array task per shard; with --dry-run, show
    /// each shard's size and progress (its file results.shard-<i>-of-<n>.csv).
    #[arg(long, value_name = "n", conflicts_with = "shard")]
    pub shards: Option<usize>,
    /// Where the cells train (not part of a cell's hash).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `--slurm` and the settings of its jobs.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Slurm (--slurm)")]
pub struct SlurmArgs {
    /// Submit the sweep to Slurm: a job array of --shards tasks (task i runs --shard i/n,
    /// resumably) and a merge job after them (--dependency=afterok) that writes
    /// <out>/results.csv and the report. Scripts and logs go to <out>/slurm/. Rerun the same
    /// command to resume after cancelled or failed tasks. See experiments/slurm/README.md.
    #[arg(long, conflicts_with = "shard", requires = "shards")]
    pub slurm: bool,
    /// Partition of both jobs.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// Time limit of each task and of the merge job (Slurm format, e.g. 04:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// CPUs per array task; torch threads per cell default to cpus-per-task / --jobs.
    #[arg(long, requires = "slurm", default_value_t = 1)]
    pub cpus_per_task: usize,
    /// Memory per task and for the merge job (e.g. 8G).
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// Run at most M array tasks at once (--array=1-n%M).
    #[arg(long, requires = "slurm")]
    pub array_max: Option<usize>,
    /// Generic resources per array task, e.g. gpu:1 (with --device cuda).
    #[arg(long, requires = "slurm")]
    pub gres: Option<String>,
    /// One more sbatch option for both jobs, as on the sbatch command line (repeatable), e.g.
    /// --sbatch-arg=--account=proj.
    #[arg(long = "sbatch-arg", value_name = "OPTION", requires = "slurm", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// The merge job only merges (no summary.md, no plots).
    #[arg(long, requires = "slurm")]
    pub no_report: bool,
}

/// The results file of a (shard of a) sweep inside `out`.
pub fn results_path(out: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => out.join("results.csv"),
        Some((i, n)) => out.join(format!("results.shard-{i}-of-{n}.csv")),
    }
}

/// Writes `bytes` to `path` via a temporary file and rename (shards may share the folder, from
/// several hosts: the temporary name carries the time as well as the process id).
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos());
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), nanos.unwrap_or(0)));
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

    if args.slurm.slurm {
        return submit(&args, &spec, &out, fake.is_some());
    }
    if args.dry_run {
        let plan = Plan::new(&spec)?;
        return print_plan(&plan, &out, shard, args.shards, args.list);
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

    cell::set_device(args.device);
    let store = ResultStore::open(&results)?;
    let opts = RunOptions {
        jobs: args.jobs,
        torch_threads: args.torch_threads,
        shard,
        progress: !args.no_progress,
        done_elsewhere: merged_done(&out, shard)?,
    };
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

/// For a shard: the cells done in the merged `<out>/results.csv` beside it (an earlier merge, or an
/// unsharded run into the same folder), which the shard skips; the merge job keeps their rows.
fn merged_done(
    out: &Path,
    shard: Option<(usize, usize)>,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut f = Finished::default();
    if shard.is_some() {
        f.add_file(&results_path(out, None))?;
    }
    Ok(f.done)
}

/// The dry run's report: the cells of this shard (listed when few, or with --list), the summary
/// line, the shard sizes (with progress per shard file for --shards n) and the estimated cost.
fn print_plan(
    plan: &Plan,
    out: &Path,
    shard: Option<(usize, usize)>,
    shards: Option<usize>,
    list: bool,
) -> anyhow::Result<()> {
    let results = results_path(out, shard);
    let mut this = Finished { done: merged_done(out, shard)?, ..Default::default() };
    this.add_file(&results)?;
    let mine = plan.indices(shard);
    let in_shard = mine.len();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let todo = if list || in_shard <= LIST_LIMIT {
        let mut todo = 0;
        let mut buf = String::new();
        writeln!(w, "index\tconfig_hash\tstatus\tdataset\tmodel\tcollective\talpha\tprivacy\tclip\tseed")?;
        for k in mine {
            let h = plan.config_hash_with(k, &mut buf);
            let done = this.done.contains(&h);
            todo += usize::from(!done);
            let c = plan.cell(k);
            writeln!(
                w,
                "{k}\t{h}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                if done { "done" } else { "todo" },
                c.dataset,
                c.model,
                c.collective.name,
                c.alpha,
                c.privacy,
                c.clip.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                c.seed
            )?;
        }
        todo
    } else {
        count_todo(plan, shard, &this)
    };
    writeln!(
        w,
        "{} cells in the grid, {} in this shard, {} to run, {} done ({})",
        plan.len(),
        in_shard,
        todo,
        in_shard - todo,
        results.display()
    )?;
    if in_shard > LIST_LIMIT && !list {
        writeln!(w, "(cells not listed: more than {LIST_LIMIT} in this shard; --list lists them)")?;
    }
    let mut to_run = todo;
    if let Some(n) = shards {
        to_run = 0;
        let sizes: Vec<usize> = (1..=n).map(|i| shard_size(plan.len(), (i, n))).collect();
        writeln!(w, "--shards {n}: {}", size_ranges(&sizes))?;
        let merged = merged_done(out, Some((1, n)))?;
        let mut rows = Vec::with_capacity(n);
        for i in 1..=n {
            let file = results_path(out, Some((i, n)));
            let mut f = Finished { done: merged.clone(), ..Default::default() };
            f.add_file(&file)?;
            let t = if f.done.is_empty() { sizes[i - 1] } else { count_todo(plan, Some((i, n)), &f) };
            to_run += t;
            rows.push((i, sizes[i - 1], t, file.is_file()));
        }
        let started = rows.iter().filter(|r| r.3).count();
        let done: usize = rows.iter().map(|r| r.1 - r.2).sum();
        writeln!(w, "shard files present: {started} of {n}; {done} cells done, {to_run} to run")?;
        if n <= 32 && started > 0 {
            writeln!(w, "shard\tcells\tdone\ttodo")?;
            for (i, size, t, _) in rows {
                writeln!(w, "{i}/{n}\t{size}\t{}\t{t}", size - t)?;
            }
        }
    } else if let Some((_, n)) = shard {
        let sizes: Vec<usize> = (1..=n).map(|i| shard_size(plan.len(), (i, n))).collect();
        writeln!(w, "--shard i/{n}: {}", size_ranges(&sizes))?;
    }
    let mut all = Finished::default();
    for f in results_files(out) {
        all.add_file(&f)?;
    }
    match all.core_seconds_per_cell() {
        Some((mean, median)) => writeln!(
            w,
            "cost per cell: {mean:.1} core-s mean, {median:.1} median, from {} finished rows in {} \
             (≈ {:.0} cells per core-hour); the {to_run} cells to run ≈ {:.1} core-hours",
            all.core_s.len(),
            out.display(),
            3600.0 / mean,
            to_run as f64 * mean / 3600.0
        )?,
        None => writeln!(
            w,
            "cost per cell: unknown (no finished rows with a time in {}; run a few cells first, \
             e.g. with --shard 1/{})",
            out.display(),
            (plan.len() / 8).max(1)
        )?,
    }
    w.flush()?;
    Ok(())
}

/// Cells of `shard` without a successful row in `finished` (hashed in parallel).
fn count_todo(plan: &Plan, shard: Option<(usize, usize)>, finished: &Finished) -> usize {
    let idx: Vec<usize> = plan.indices(shard).collect();
    idx.into_par_iter()
        .map_init(String::new, |buf, k| usize::from(!finished.done.contains(&plan.config_hash_with(k, buf))))
        .sum()
}

/// `8 shards of 125000 cells` or `shards 1–3: 12 cells, 4–8: 11 cells`.
fn size_ranges(sizes: &[usize]) -> String {
    let n = sizes.len();
    let mut parts: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        if i == n || sizes[i] != sizes[start] {
            parts.push(if i - start == 1 {
                format!("{}: {} cells", start + 1, sizes[start])
            } else {
                format!("{}–{}: {} cells", start + 1, i, sizes[start])
            });
            start = i;
        }
    }
    if parts.len() == 1 {
        format!("{n} shard(s) of {} cells", sizes.first().copied().unwrap_or(0))
    } else {
        format!("shards {}", parts.join(", "))
    }
}

/// `--slurm`: write the array and merge scripts under `<out>/slurm/` and submit them (or print
/// them with --dry-run).
fn submit(args: &SweepArgs, spec: &SweepSpec, out: &Path, fake: bool) -> anyhow::Result<()> {
    let s = &args.slurm;
    let plan = Plan::new(spec)?;
    let requested = args.shards.context("--slurm needs --shards n (the number of array tasks)")?;
    if requested == 0 || s.cpus_per_task == 0 || args.jobs == 0 || s.array_max == Some(0) {
        anyhow::bail!("--shards, --cpus-per-task, --jobs and --array-max must be ≥ 1");
    }
    if plan.is_empty() {
        anyhow::bail!("{}: the grid has no cells", args.spec.display());
    }
    let n = requested.min(plan.len());
    if n < requested {
        eprintln!("note: --shards {requested} > {} cells: submitting {n} tasks, one cell each", plan.len());
    }
    let cwd = std::env::current_dir().context("the current directory")?;
    let out_abs = if out.is_absolute() { out.to_path_buf() } else { cwd.join(out) };
    let binary = std::env::current_exe().context("locating the crowdout binary")?;
    let binary = binary.canonicalize().unwrap_or(binary);
    let paths =
        SlurmPaths { binary, spec: out_abs.join("slurm").join("spec.toml"), out: out_abs, workdir: cwd };
    let opts = SlurmOptions {
        shards: n,
        array_max: s.array_max,
        partition: s.partition.clone(),
        time: s.time.clone(),
        cpus_per_task: s.cpus_per_task,
        mem: s.mem.clone(),
        gres: s.gres.clone(),
        extra: s.sbatch_args.clone(),
        jobs: args.jobs,
        torch_threads: args.torch_threads,
        device: args.device,
        report: !s.no_report,
    };
    let array = opts.array_script(&spec.name, &paths);
    let merge = opts.merge_script(&spec.name, &paths);
    print_plan(&plan, out, None, Some(n), false)?;
    let merge_flags = "--dependency=afterok:<array job id> --kill-on-invalid-dep=yes";
    if args.dry_run {
        println!("--- {} ---\n{array}", paths.array_script().display());
        println!("--- {} ---\n{merge}", paths.merge_script().display());
        println!("would run: sbatch --parsable {}", paths.array_script().display());
        println!("           sbatch --parsable {merge_flags} {}", paths.merge_script().display());
        return Ok(());
    }
    if fake {
        eprintln!("warning: {FAKE_RUNNER_ENV} is set: the array tasks will use the FAKE test runner");
    }
    std::fs::create_dir_all(paths.logs()).with_context(|| format!("creating {}", paths.logs().display()))?;
    let spec_text = std::fs::read(&args.spec).with_context(|| format!("reading {}", args.spec.display()))?;
    write_atomic(&paths.spec, &spec_text)?;
    for (path, text) in [(paths.array_script(), &array), (paths.merge_script(), &merge)] {
        write_atomic(&path, text.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let array_id = sbatch(&[paths.array_script().as_os_str()])?;
    let dep = format!("--dependency=afterok:{array_id}");
    let merge_id =
        sbatch(&[dep.as_ref(), "--kill-on-invalid-dep=yes".as_ref(), paths.merge_script().as_os_str()])
            .with_context(|| {
                format!(
                    "array job {array_id} is submitted, but not its merge job; submit it with \
                 `sbatch {dep} {}`",
                    paths.merge_script().display()
                )
            })?;
    println!(
        "array job {array_id}: {n} tasks, task i writes {}/results.shard-<i>-of-{n}.csv",
        paths.out.display()
    );
    println!("merge job {merge_id}: after every task succeeded, merges into {}", paths.merged().display());
    if opts.report {
        println!("report: {} (summary.md, plots)", paths.out.display());
    }
    println!("scripts: {}  logs: {}", paths.dir().display(), paths.logs().display());
    println!(
        "follow with `squeue -j {array_id},{merge_id}`; after a cancelled or failed task, rerun this command: \
         finished cells are kept"
    );
    Ok(())
}

/// `sbatch --parsable ARGS…`: the job id.
fn sbatch(args: &[&std::ffi::OsStr]) -> anyhow::Result<u64> {
    let o = std::process::Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("running sbatch (is Slurm installed and on PATH?)")?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        anyhow::bail!("sbatch failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim());
    }
    parse_job_id(&stdout).with_context(|| format!("sbatch printed no job id: {stdout:?}"))
}
