//! `crowdout data`: fetch, verify and inspect datasets.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crowdout::data::{self, DataDir, DatasetSpec, Limits, LoadOptions};

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
    /// Data directory for fetched datasets [default: $CROWDOUT_DATA, else ./datasets/cache].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Download a dataset (fashion-mnist, mnist, adult, spamassassin) and verify its pinned sha256.
    Fetch {
        /// Dataset names; `all` for every fetchable one.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Check fetched datasets or fixtures (fashion-mnist-mini, adult-mini, spamassassin-mini) against the pins.
    Verify {
        /// Dataset names; `all` for every fetchable dataset and fixture.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Load a dataset and print counts, shapes, class balance and load time.
    Info(InfoArgs),
    /// Generate the synthetic MPD-like playlist corpus and print its statistics against the
    /// calibration targets (docs/recsys.md).
    SynthPlaylists(super::recsys::SynthArgs),
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// fashion-mnist, mnist, adult, spamassassin[:OPTIONS], fashion-mnist-mini, adult-mini,
    /// spamassassin-mini[:OPTIONS], synthetic-images, synthetic-tabular, csv:PATH or cifar10:DIR.
    spec: String,
    /// CSV only: header name of the label column [default: label].
    #[arg(long)]
    label_column: Option<String>,
    /// CSV only: field separator (one ASCII character).
    #[arg(long)]
    separator: Option<char>,
    /// CSV only: the label value that becomes class 1 (all others class 0).
    #[arg(long)]
    positive_label: Option<String>,
    /// CSV only: fraction of rows held out as test.
    #[arg(long)]
    test_fraction: Option<f64>,
    /// CSV only: seed of the train/test shuffle.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep only the first N training examples.
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Keep only the first N test examples.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
    /// Skip sha256 verification (for user-supplied originals whose content differs from the pins).
    #[arg(long)]
    no_verify: bool,
}

pub fn run(args: DataArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.map(DataDir::new).unwrap_or_else(DataDir::from_env);
    match args.command {
        DataCommand::Fetch { names } => {
            for name in expand(&names, false) {
                let path = data::fetch(&name, &dir).with_context(|| format!("crowdout data fetch {name}"))?;
                println!("{name}: verified in {}", path.display());
            }
        }
        DataCommand::Verify { names } => {
            for name in expand(&names, true) {
                let files =
                    data::verify(&name, &dir).with_context(|| format!("crowdout data verify {name}"))?;
                for f in &files {
                    println!("ok  {}", f.display());
                }
                println!("{name}: {} files match datasets/checksums.sha256", files.len());
            }
        }
        DataCommand::Info(a) => info(a, &dir)?,
        DataCommand::SynthPlaylists(a) => super::recsys::synth_playlists(a)?,
    }
    Ok(())
}

fn expand(names: &[String], with_fixtures: bool) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        if n == "all" {
            out.extend(data::Fetchable::ALL.iter().map(|f| f.key().to_string()));
            if with_fixtures {
                out.extend(data::FIXTURES.iter().map(|s| s.to_string()));
            }
        } else {
            out.push(n.clone());
        }
    }
    out
}

fn info(a: InfoArgs, dir: &DataDir) -> anyhow::Result<()> {
    let mut spec: DatasetSpec = a.spec.parse()?;
    if let DatasetSpec::Csv { label_column, separator, positive_label, test_fraction, seed, .. } = &mut spec {
        if let Some(v) = a.label_column {
            *label_column = v;
        }
        if let Some(v) = a.separator {
            *separator = v;
        }
        if a.positive_label.is_some() {
            *positive_label = a.positive_label;
        }
        if let Some(v) = a.test_fraction {
            *test_fraction = v;
        }
        if let Some(v) = a.seed {
            *seed = v;
        }
    } else if a.label_column.is_some()
        || a.separator.is_some()
        || a.positive_label.is_some()
        || a.test_fraction.is_some()
        || a.seed.is_some()
    {
        bail!("--label-column, --separator, --positive-label, --test-fraction and --seed apply only to csv:PATH, not to `{}`", a.spec);
    }
    let limits = Limits { train: a.train_limit, test: a.test_limit };
    let opts = if a.no_verify { LoadOptions { verify: false } } else { LoadOptions::from_env() };
    let t0 = Instant::now();
    let split = data::load_with(&spec, dir, &limits, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    println!("dataset    {}", split.name);
    println!("spec       {}", serde_json::to_string(&spec)?);
    println!(
        "verified   {}",
        if opts.verify { "yes (where pinned)" } else { "no (--no-verify / CROWDOUT_SKIP_VERIFY)" }
    );
    println!("load time  {secs:.2} s");
    for (part, ds) in [("train", &split.train), ("test", &split.test)] {
        let counts = ds.class_counts();
        let n = ds.len().max(1) as f64;
        let balance: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{k}:{c} ({:.1}%)", 100.0 * *c as f64 / n))
            .collect();
        println!(
            "{part:<6}     {} examples, shape {:?}, {} classes",
            ds.len(),
            ds.example_shape(),
            ds.num_classes
        );
        println!("           classes {}", balance.join(" "));
    }
    if let Some(v) = &split.vocab {
        println!(
            "tokens     T = {} per mail ([BOS] first, cut after T, padded), vocabulary {} ids fitted on train + {} unseen ids",
            v.max_len(),
            v.len(),
            v.model_vocab() - v.len()
        );
        // A row whose last position is not padding reached T tokens: its mail was cut (or had
        // exactly T tokens).
        let full = |d: &data::Dataset| {
            d.x.narrow(1, v.max_len() - 1, 1)
                .ne(data::tokenizer::PAD_ID)
                .sum(tch::Kind::Int64)
                .int64_value(&[])
        };
        println!(
            "           {} train and {} test mails filled to T (longer mails keep their first T tokens)",
            full(&split.train),
            full(&split.test)
        );
    }
    if !split.feature_names.is_empty() {
        let shown: Vec<String> = split
            .feature_names
            .iter()
            .zip(&split.feature_std)
            .take(8)
            .map(|(n, s)| format!("{n} (std {s:.3})"))
            .collect();
        println!(
            "features   {}: {}{}",
            split.feature_names.len(),
            shown.join(", "),
            if split.feature_names.len() > 8 { ", …" } else { "" }
        );
    }
    Ok(())
}
