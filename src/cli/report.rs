//! `crowdout report <results.csv>... [--out DIR]`, and `--merge ... --out merged.csv`.

use std::path::PathBuf;

use crowdout::report::{build_report, DEFAULT_TARGET_SUCCESS};
use crowdout::sweep::merge::merge_files_to;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Results CSVs (e.g. the shard files of one sweep); deduplicated by config_hash.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder for summary.md and plots [default: the folder of the first input];
    /// with --merge: the merged CSV file (required).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only merge the inputs into one results CSV at --out (no summary, no plots).
    #[arg(long)]
    pub merge: bool,
    /// Target success S* for the critical mass.
    #[arg(long, default_value_t = DEFAULT_TARGET_SUCCESS)]
    pub target_success: f64,
    /// Also write critical_mass.csv and its plot (the steerability audit's dose–response fits,
    /// docs/steerability.md) with the default targets 0.5, 0.9 and the midway threshold; done
    /// anyway when a steer.json sits beside an input (its settings are used then).
    #[arg(long)]
    pub critical_mass: bool,
    /// Write the summary only, no plots.
    #[arg(long)]
    pub no_plots: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if args.merge {
        let Some(out) = args.out else {
            anyhow::bail!("--merge needs --out <merged.csv>");
        };
        if args.inputs.contains(&out) {
            anyhow::bail!("--out {} is also an input; write the merge elsewhere", out.display());
        }
        let m = merge_files_to(&args.inputs, &out)?;
        eprintln!(
            "{}: {} cells ({} failed) merged from {} file(s)",
            out.display(),
            m.rows,
            m.failed,
            args.inputs.len()
        );
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        args.inputs[0].parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("."))
    });
    let files = build_report(&args.inputs, &out, args.target_success, !args.no_plots)?;
    eprintln!(
        "{}: {} cells, {} plot(s) (PNG + SVG); per-configuration statistics in {}",
        files.summary.display(),
        files.rows,
        files.plots.len(),
        files.config_stats.display()
    );
    if args.critical_mass && crowdout::report::critical::settings_beside(&args.inputs).is_none() {
        let rows = crowdout::sweep::merge::merge_files(&args.inputs)?;
        let st = crowdout::audit::steer::spec::default_targets();
        let f = crowdout::report::critical::write(&out, &rows, &st, Default::default(), !args.no_plots)?;
        eprintln!("{}: {} arm(s)", f.csv.display(), f.arms.len());
    }
    let c = &files.counts;
    eprintln!("ceiling at UCB(E[S0]): {}", c.ceiling.line());
    eprintln!("dpsgd_lb (E[S]): {}", c.dpsgd.line());
    eprintln!("dpsgd_lb_hp (per run): {}", c.dpsgd_hp.line());
    let violated = c.ceiling.violated + c.dpsgd.violated + c.dpsgd_hp.violated;
    if violated > 0 {
        eprintln!(
            "WARNING: {violated} bound violation(s) over seeds; see the BOUND VIOLATIONS section of {}",
            files.summary.display()
        );
    }
    Ok(())
}
