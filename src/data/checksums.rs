//! Pinned sha256 of the decompressed content of every known data file.
//!
//! The pins live in `datasets/checksums.sha256` (one source of truth, also read by
//! `datasets/fetch.sh`) and are compiled in here. Keys are `<dataset>/<canonical file name>`, e.g.
//! `mnist/train-images-idx3-ubyte`; the stored file may be gzipped or use MNIST's dotted name.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{DataError, Result};

/// The text of `datasets/checksums.sha256`.
pub const PINS: &str = include_str!("../../datasets/checksums.sha256");

/// All `(key, sha256)` pairs, in file order.
pub fn all() -> Vec<(&'static str, &'static str)> {
    PINS.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let sha = it.next()?;
            let key = it.next()?;
            Some((key, sha))
        })
        .collect()
}

/// The pinned sha256 for `key`, if any.
pub fn pinned(key: &str) -> Option<&'static str> {
    all().into_iter().find(|(k, _)| *k == key).map(|(_, s)| s)
}

/// The keys pinned for `dataset` (its canonical file names), in file order.
pub fn files_of(dataset: &str) -> Vec<&'static str> {
    all()
        .into_iter()
        .filter_map(|(k, _)| k.split_once('/').filter(|(d, _)| *d == dataset).map(|(_, f)| f))
        .collect()
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check `bytes` (read from `path`) against the pin for `key`. A key without a pin is an error
/// (a programming error in the caller, but reported, not panicked).
pub fn check(path: &Path, key: &str, bytes: &[u8]) -> Result<()> {
    let expected = pinned(key).ok_or_else(|| DataError::Format {
        path: path.to_path_buf(),
        what: format!("no sha256 pinned for `{key}` in datasets/checksums.sha256"),
    })?;
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(DataError::Checksum {
            path: path.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        // FIPS 180-2 test vector "abc".
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn pins_are_well_formed_and_cover_every_dataset() {
        let all = all();
        for (k, s) in &all {
            assert_eq!(s.len(), 64, "{k}");
            assert!(s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{k}");
        }
        for d in ["fashion-mnist", "mnist", "fashion-mnist-mini"] {
            assert_eq!(files_of(d).len(), 4, "{d}");
        }
        assert_eq!(files_of("adult"), vec!["adult.data", "adult.test"]);
        assert_eq!(files_of("adult-mini"), vec!["adult.data", "adult.test"]);
    }

    #[test]
    fn wrong_content_is_a_checksum_error_naming_file_and_key() {
        let e = check(Path::new("/x/adult.data"), "adult/adult.data", b"not adult").unwrap_err().to_string();
        assert!(
            e.contains("/x/adult.data") && e.contains("adult/adult.data") && e.contains("5b00264637"),
            "{e}"
        );
    }
}
