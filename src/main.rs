//! The `crowdout` command line: a thin clap layer over the library.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "crowdout", version, about = "Algorithmic collective action under differential privacy", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model (optionally with DP-SGD and collectives) and write a JSON run record.
    Train(cli::train::TrainArgs),
    /// Run a grid of training cells from a TOML spec into a resumable results CSV.
    Sweep(cli::sweep::SweepArgs),
    /// Summarise results CSVs into markdown tables and plots.
    Report(cli::report::ReportArgs),
    /// Privacy accounting: ε for given (q, σ, T, δ), or σ for a target ε.
    Account(cli::account::AccountArgs),
    /// Bounds on collective success and critical mass.
    Bound(cli::bound::BoundArgs),
    /// Empirical privacy audit and membership inference.
    Audit(cli::audit::AuditArgs),
    /// Fetch, verify and inspect datasets.
    Data(cli::data::DataArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cli::train::run(a),
        Command::Sweep(a) => cli::sweep::run(a),
        Command::Report(a) => cli::report::run(a),
        Command::Account(a) => cli::account::run(a),
        Command::Bound(a) => cli::bound::run(a),
        Command::Audit(a) => cli::audit::run(a),
        Command::Data(a) => cli::data::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
