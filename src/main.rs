//! The `crowdout` command line: a thin clap layer over the library.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Playlist collectives (Baumann & Mendler-Dünner) against an MF-Transformer recommender under DP-SGD.
    Recsys(cli::recsys::RecsysArgs),
}

/// `--flag -1` is a value, not an unknown option, in every subcommand (so a negative value reaches
/// the validation that names the flag, instead of clap's "unexpected argument '-1'").
fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true).mut_subcommands(allow_negative_numbers)
}

/// `error: context: cause: ...` with a cause left out when the message before it already ends
/// with its text (errors that print their source *and* return it, e.g. `path: io error`).
fn error_message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.is_empty() {
            msg = text;
        } else if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

fn main() {
    crowdout::malloc::tune();
    let matches = allow_negative_numbers(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(a) => cli::train::run(a),
        Command::Sweep(a) => cli::sweep::run(a),
        Command::Report(a) => cli::report::run(a),
        Command::Account(a) => cli::account::run(a),
        Command::Bound(a) => cli::bound::run(a),
        Command::Audit(a) => cli::audit::run(a),
        Command::Data(a) => cli::data::run(a),
        Command::Recsys(a) => cli::recsys::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_message(&e));
        std::process::exit(2);
    }
}
