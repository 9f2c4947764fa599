//! Loading: a [`DatasetSpec`] → a [`Split`] — read, verify pinned files, parse, encode, limit.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    cifar, fixtures_dir, idx, synthetic, tabular, text, DataDir, DataError, DatasetSpec, Fetchable,
    LoadOptions, Result, Split, FIXTURES_ENV,
};

/// How many examples to keep: the **first** `n` of train and of test, in file order (for CSV
/// specs, in the order after the seeded shuffle). `None` keeps all; a limit above the size keeps
/// all. Statistics for standardisation are fitted on the *whole* train file/part before limiting,
/// so the encoding does not depend on the limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub train: Option<usize>,
    #[serde(default)]
    pub test: Option<usize>,
}

impl Limits {
    pub const NONE: Limits = Limits { train: None, test: None };
}

/// Load `spec` with verification as set by the environment ([`LoadOptions::from_env`]).
pub fn load(spec: &DatasetSpec, dir: &DataDir, limits: &Limits) -> Result<Split> {
    load_with(spec, dir, limits, &LoadOptions::from_env())
}

/// Load `spec`: read (fetched data from `dir`, fixtures from [`fixtures_dir`], user files from
/// their paths), verify pinned files, parse, encode, then keep the first `limits` examples.
pub fn load_with(spec: &DatasetSpec, dir: &DataDir, limits: &Limits, opts: &LoadOptions) -> Result<Split> {
    let split = match spec {
        DatasetSpec::FashionMnist => idx::load_mnist_like(
            Fetchable::FashionMnist.key(),
            &fetched_dir(dir, Fetchable::FashionMnist)?,
            opts.verify,
        )?,
        DatasetSpec::Mnist => {
            idx::load_mnist_like(Fetchable::Mnist.key(), &fetched_dir(dir, Fetchable::Mnist)?, opts.verify)?
        }
        DatasetSpec::Adult => {
            tabular::load_adult("adult", &fetched_dir(dir, Fetchable::Adult)?, opts.verify)?
        }
        DatasetSpec::FashionMnistMini => {
            idx::load_mnist_like("fashion-mnist-mini", &fixture_dir("fashion-mnist-mini")?, opts.verify)?
        }
        DatasetSpec::AdultMini => {
            tabular::load_adult("adult-mini", &fixture_dir("adult-mini")?, opts.verify)?
        }
        DatasetSpec::Csv { path, label_column, separator, positive_label, test_fraction, seed } => {
            tabular::load_csv(&tabular::CsvOptions {
                path: path.clone(),
                label_column: label_column.clone(),
                separator: *separator,
                positive_label: positive_label.clone(),
                test_fraction: *test_fraction,
                seed: *seed,
            })?
        }
        DatasetSpec::Cifar10 { dir } => cifar::load_cifar10(dir)?,
        DatasetSpec::Spamassassin(o) => match &o.dir {
            // A user's corpus: structure checks only (no pins).
            Some(d) => text::load_mails(&spec.name(), d, o, false)?,
            None => text::load_mails(
                Fetchable::Spamassassin.key(),
                &fetched_dir(dir, Fetchable::Spamassassin)?,
                o,
                opts.verify,
            )?,
        },
        DatasetSpec::SpamassassinMini(o) => {
            text::load_mails("spamassassin-mini", &fixture_dir("spamassassin-mini")?, o, opts.verify)?
        }
        DatasetSpec::Synthetic { shape, classes, train, test, separation, seed } => {
            synthetic::gaussian_mixture(&synthetic::MixtureSpec {
                shape: shape.clone(),
                classes: *classes,
                train: *train,
                test: *test,
                separation: *separation,
                seed: *seed,
            })?
        }
    };
    Ok(apply_limits(split, limits))
}

/// Keep the first `limits.train` / `limits.test` examples.
pub fn apply_limits(split: Split, limits: &Limits) -> Split {
    let train = match limits.train {
        Some(n) => split.train.take_first(n),
        None => split.train,
    };
    let test = match limits.test {
        Some(n) => split.test.take_first(n),
        None => split.test,
    };
    Split { train, test, ..split }
}

/// `<data dir>/<name>/`, or a [`DataError::NotFetched`] when it does not exist.
fn fetched_dir(dir: &DataDir, which: Fetchable) -> Result<PathBuf> {
    let d = dir.0.join(which.key());
    if d.is_dir() {
        Ok(d)
    } else {
        Err(DataError::NotFetched {
            name: which.key().to_string(),
            dir: dir.0.clone(),
            what: format!("{} does not exist", d.display()),
        })
    }
}

fn fixture_dir(name: &str) -> Result<PathBuf> {
    let d = fixtures_dir().join(name);
    if d.is_dir() {
        Ok(d)
    } else {
        Err(DataError::Spec(format!(
            "fixture `{name}` not found at {} (set {FIXTURES_ENV} to the datasets/fixtures folder)",
            d.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fetched_dataset_says_how_to_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let err =
            load(&DatasetSpec::Mnist, &DataDir::new(tmp.path()), &Limits::NONE).unwrap_err().to_string();
        assert!(err.contains("crowdout data fetch mnist"), "{err}");
    }
}
