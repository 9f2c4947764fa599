//! Where data lives: the data directory (`$CROWDOUT_DATA`, else `./datasets/cache`), the committed
//! fixtures directory, and the environment switches of a load (see the module doc of
//! [`crate::data`], "Where data lives").

use std::path::{Path, PathBuf};

/// Where fetched datasets live: `$CROWDOUT_DATA`, else `./datasets/cache` relative to the current
/// directory (made absolute at construction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir(pub PathBuf);

/// Environment variable overriding the data directory.
pub const DATA_ENV: &str = "CROWDOUT_DATA";
/// Environment variable overriding the fixtures directory.
pub const FIXTURES_ENV: &str = "CROWDOUT_FIXTURES";
/// Environment variable that, set to `1`/`true`/`yes`, skips sha256 verification on load.
pub const SKIP_VERIFY_ENV: &str = "CROWDOUT_SKIP_VERIFY";
/// Default data directory, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = "datasets/cache";

impl DataDir {
    /// `$CROWDOUT_DATA` when set and non-empty, else `<current dir>/datasets/cache`.
    pub fn from_env() -> Self {
        match std::env::var_os(DATA_ENV) {
            Some(v) if !v.is_empty() => Self(PathBuf::from(v)),
            _ => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Self(cwd.join(DEFAULT_DATA_DIR))
            }
        }
    }
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// The committed fixtures directory: `$CROWDOUT_FIXTURES`, else
/// `env!("CARGO_MANIFEST_DIR")/datasets/fixtures` (fixed at compile time, so tests and the binary
/// built in the repository both find it).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fixtures")),
    }
}

/// Options of one load beyond the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Check every pinned file against `datasets/checksums.sha256` (default true). Turn off only
    /// for user-supplied originals whose *decompressed* bytes differ from the pins.
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { verify: true }
    }
}

impl LoadOptions {
    /// Default options, with `verify = false` when `CROWDOUT_SKIP_VERIFY` is `1`, `true` or `yes`.
    pub fn from_env() -> Self {
        let skip = std::env::var(SKIP_VERIFY_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Self { verify: !skip }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_default_is_relative_to_cwd() {
        // Only checks the shape of the default; the env var may be set by the user running tests.
        if std::env::var_os(DATA_ENV).is_none() {
            let d = DataDir::from_env();
            assert!(d.0.is_absolute());
            assert!(d.0.ends_with(DEFAULT_DATA_DIR));
        }
    }
}
