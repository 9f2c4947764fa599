//! Finding and reading data files: raw or gzip (detected by its magic bytes, not the name), with
//! MNIST's two naming styles.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{checksums, DataError, Result};

/// Candidate file names for the canonical name `c`, in order of preference: `c`, `c.gz`, and for
/// IDX names the dotted spelling used by the MNIST host (`train-images.idx3-ubyte`) raw and gzipped.
pub fn candidates(c: &str) -> Vec<String> {
    let mut v = vec![c.to_string(), format!("{c}.gz")];
    if c.contains("-idx") {
        let dotted = c.replacen("-idx", ".idx", 1);
        v.push(dotted.clone());
        v.push(format!("{dotted}.gz"));
    }
    v
}

/// The first existing candidate for `canonical` in `dir`.
pub fn find(dir: &Path, canonical: &str) -> Option<PathBuf> {
    candidates(canonical).into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Like [`find`], but a missing file is an error listing the names tried.
pub fn find_required(dir: &Path, canonical: &str) -> Result<PathBuf> {
    find(dir, canonical).ok_or_else(|| DataError::Format {
        path: dir.join(canonical),
        what: format!("file not found (tried {} in {})", candidates(canonical).join(", "), dir.display()),
    })
}

/// Read `path` whole; if it starts with the gzip magic `1f 8b`, return the decompressed bytes.
/// A corrupt or truncated gzip stream is a [`DataError::Format`] naming the file.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 2);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            what: format!("corrupt or truncated gzip data: {e}"),
        })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Find `<dir>/<canonical>` (any accepted spelling), read it (decompressing), and when `verify`
/// check it against the pin `<key_prefix>/<canonical>`.
pub fn read_pinned(
    dir: &Path,
    key_prefix: &str,
    canonical: &str,
    verify: bool,
) -> Result<(PathBuf, Vec<u8>)> {
    let path = find_required(dir, canonical)?;
    let bytes = read_maybe_gz(&path)?;
    if verify {
        checksums::check(&path, &format!("{key_prefix}/{canonical}"), &bytes)?;
    }
    Ok((path, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_raw_and_gz_alike_and_finds_dotted_names() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("train-images.idx3-ubyte"), b"hello").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"hello").unwrap();
        std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let a = find(tmp.path(), "train-images-idx3-ubyte").unwrap();
        let b = find(tmp.path(), "t10k-labels-idx1-ubyte").unwrap();
        assert_eq!(read_maybe_gz(&a).unwrap(), b"hello");
        assert_eq!(read_maybe_gz(&b).unwrap(), b"hello");
        let e = find_required(tmp.path(), "train-labels-idx1-ubyte").unwrap_err().to_string();
        assert!(e.contains("train-labels.idx1-ubyte.gz"), "{e}");
    }

    #[test]
    fn corrupt_and_truncated_gzip_are_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[7u8; 5000]).unwrap();
        let full = gz.finish().unwrap();
        let p = tmp.path().join("x.gz");
        std::fs::write(&p, &full[..full.len() / 2]).unwrap();
        let e = read_maybe_gz(&p).unwrap_err().to_string();
        assert!(e.contains("x.gz") && e.contains("gzip"), "{e}");
        let mut bad = full.clone();
        for b in bad.iter_mut().skip(12).take(8) {
            *b ^= 0xff;
        }
        std::fs::write(&p, &bad).unwrap();
        assert!(read_maybe_gz(&p).unwrap_err().to_string().contains("x.gz"));
    }
}
