//! `crowdout recsys`: playlist collectives (Baumann & Mendler-Dünner 2024) under DP-SGD on the
//! synthetic MPD-like corpus; and `crowdout data synth-playlists` (the corpus alone).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crowdout::recsys::experiment::{run_cell, summarize, ExperimentConfig, Privacy, RunRow};
use crowdout::recsys::synth::{generate, CorpusStats, SynthConfig, TARGETS};

#[derive(clap::Args, Debug)]
pub struct RecsysArgs {
    #[command(subcommand)]
    command: RecsysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RecsysCommand {
    /// Run an experiment grid (privacy × strategy × budget × seed, plus a no-collective run per
    /// privacy and seed) from a TOML file; resumable: runs already in OUT/runs.csv are skipped.
    /// Writes OUT/runs.csv (one row per run and collective), OUT/summary.csv (amplification with
    /// its 95 % t-interval over seeds, quality change against the no-collective model) and
    /// OUT/amplification.png, OUT/config.json and OUT/provenance.json (git commit, versions, threads).
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Experiment TOML (sections [corpus], [model], [train]; keys privacy, strategies, budgets,
    /// seeds, n_test, n_recos, second); see experiments/recsys-*.toml.
    #[arg(long)]
    config: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// Run nothing: rewrite OUT/summary.csv from the runs already in OUT/runs.csv.
    #[arg(long)]
    summary_only: bool,
}

pub fn run(args: RecsysArgs) -> anyhow::Result<()> {
    match args.command {
        RecsysCommand::Run(a) => run_grid(a),
    }
}

fn run_grid(a: RunArgs) -> anyhow::Result<()> {
    if a.threads < 1 {
        bail!("--threads {} must be ≥ 1", a.threads);
    }
    tch::set_num_threads(a.threads);
    let text =
        std::fs::read_to_string(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let cfg: ExperimentConfig =
        toml::from_str(&text).with_context(|| format!("parsing {}", a.config.display()))?;
    let privacy: Vec<Privacy> = cfg
        .privacy
        .iter()
        .map(|p| Privacy::parse(p))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: key privacy", a.config.display()))?;
    if cfg.seeds.is_empty() || cfg.budgets.is_empty() || cfg.strategies.is_empty() {
        bail!("{}: seeds, budgets and strategies must each be non-empty", a.config.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    if !a.summary_only {
        std::fs::write(a.out.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
        let prov = crowdout::provenance::Provenance::collect();
        std::fs::write(a.out.join("provenance.json"), serde_json::to_string_pretty(&prov)?)?;
    }
    let corpus = generate(&cfg.corpus).with_context(|| format!("{}: [corpus]", a.config.display()))?;
    let runs_path = a.out.join("runs.csv");
    let mut rows = read_rows(&runs_path)?;
    let done: HashSet<(String, u64, String, usize)> =
        // A run is keyed by its first collective (a second collective's rows share its run).
        rows.iter()
            .filter(|r| r.collective == 0)
            .map(|r| (r.privacy.clone(), r.seed, r.strategy.clone(), r.budget))
            .collect();
    let mut todo = Vec::new();
    for p in &privacy {
        for &seed in &cfg.seeds {
            todo.push((*p, seed, None, 0));
            for s in &cfg.strategies {
                for &b in &cfg.budgets {
                    todo.push((*p, seed, Some(*s), b));
                }
            }
        }
    }
    todo.retain(|(p, seed, s, b)| {
        let name = s.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
        !a.summary_only && !done.contains(&(p.label(), *seed, name, *b))
    });
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} (eta {eta}) {msg}")?);
    for (p, seed, s, b) in todo {
        bar.set_message(format!(
            "{} seed {seed} {} b={b}",
            p.label(),
            s.map(|s| s.to_string()).unwrap_or("none".into())
        ));
        let new = run_cell(&cfg, &corpus, p, seed, s, b)?;
        append_rows(&runs_path, &new)?;
        rows.extend(new);
        bar.inc(1);
    }
    bar.finish();
    let summary = summarize(&rows);
    let mut w = csv::Writer::from_path(a.out.join("summary.csv"))?;
    for r in &summary {
        w.serialize(r)?;
    }
    w.flush()?;
    let png = a.out.join("amplification.png");
    match crowdout::recsys::plot::amplification_vs_budget(&png, &summary) {
        Ok(()) => println!("plot {}", png.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
    println!("privacy       strategy     budget  seeds  amplification [95% CI]      ΔR-prec    ΔNDCG  hits (no-collective)");
    for r in &summary {
        println!(
            "{:<13} {:<12} {:>6} {:>6}  {:>7.2} [{:>7.2}, {:>7.2}]   {:>+8.4} {:>+8.4}  {} ({})",
            r.privacy,
            if r.other.is_empty() { r.strategy.clone() } else { format!("{}|{}", r.strategy, r.other) },
            r.budget,
            r.seeds,
            r.amplification,
            r.amplification_lo,
            r.amplification_hi,
            r.r_precision_delta,
            r.ndcg_delta,
            r.hits,
            r.reference_hits
        );
    }
    println!("wrote {} and {}", runs_path.display(), a.out.join("summary.csv").display());
    Ok(())
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<RunRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}: row {}", path.display(), i + 2)))
        .collect()
}

fn append_rows(path: &Path, rows: &[RunRow]) -> anyhow::Result<()> {
    let fresh = !path.exists();
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut w = csv::WriterBuilder::new().has_headers(fresh).from_writer(f);
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// `crowdout data synth-playlists`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Number of playlists (the scale).
    #[arg(long, default_value_t = SynthConfig::default().playlists)]
    playlists: usize,
    /// Generator seed.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Latent clusters.
    #[arg(long, default_value_t = SynthConfig::default().clusters)]
    clusters: usize,
    /// Write the playlists here, one per line, song ids separated by spaces.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn synth_playlists(a: SynthArgs) -> anyhow::Result<()> {
    let cfg =
        SynthConfig { playlists: a.playlists, seed: a.seed, clusters: a.clusters, ..SynthConfig::default() };
    let c = generate(&cfg).context("--playlists/--seed/--clusters")?;
    let st = CorpusStats::of(&c);
    println!("statistic        value      target (MPD)");
    for t in &TARGETS {
        let v = st.value(t.name).unwrap_or(f64::NAN);
        let ok = if v >= t.lo && v <= t.hi { "ok" } else { "OUT OF RANGE" };
        println!("{:<16} {:>9.4}  [{}, {}] {}  {ok}", t.name, v, t.lo, t.hi, t.mpd);
    }
    println!("playlists {}, songs {}, occurrences {}", st.playlists, st.songs, st.occurrences);
    println!(
        "mean count/song {:.2} (MPD 29.3; grows with scale), playlists > 20 songs {:.3}, repeated bigrams {:.3}",
        st.mean_count, st.over_20_share, st.repeated_bigram_share
    );
    if let Some(path) = a.out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("--out {}", path.display()))?,
        );
        for p in &c.playlists {
            let line: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            writeln!(f, "{}", line.join(" "))?;
        }
        println!("wrote {}", path.display());
    }
    Ok(())
}
