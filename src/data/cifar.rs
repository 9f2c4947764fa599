//! The CIFAR-10 binary version (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>):
//! `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin`, each a sequence of
//! 3073-byte records: 1 label byte (0..9), then 3072 pixel bytes — 1024 red, 1024 green,
//! 1024 blue, each a 32×32 row-major plane, i.e. already `[C, H, W]`.
//!
//! CIFAR-10 is not fetchable from the registries reachable here, so there are no pinned hashes:
//! files are checked for structure only (length a whole number of records, labels in range).
//! Files may be gzipped. Any number of records per file is accepted (the originals have 10,000).

use std::path::Path;

use super::{files, images_tensor, labels_tensor, DataError, Dataset, Result, Split};

/// Bytes per record: one label plus a 3×32×32 image.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// Training batch files, in order.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// CIFAR-10 class names, by label.
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Parse one batch file's bytes into `(labels, pixels)`, checking its structure.
pub fn parse_batch(path: &Path, bytes: &[u8]) -> Result<(Vec<i64>, Vec<u8>)> {
    let bad = |what: String| DataError::Format { path: path.to_path_buf(), what };
    if bytes.is_empty() {
        return Err(bad("empty file; expected CIFAR-10 binary records of 3073 bytes".into()));
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(bad(format!(
            "length {} is not a whole number of 3073-byte records (1 label + 3072 pixels): truncated, or not the CIFAR-10 binary version ({} complete records, {} bytes left over)",
            bytes.len(),
            bytes.len() / RECORD,
            bytes.len() % RECORD
        )));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(bad(format!(
                "record {i} (byte offset {}): label byte {} is outside 0..10",
                i * RECORD,
                rec[0]
            )));
        }
        labels.push(rec[0] as i64);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((labels, pixels))
}

fn load_files(dir: &Path, names: &[&str]) -> Result<Dataset> {
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for name in names {
        let path = files::find_required(dir, name)?;
        let bytes = files::read_maybe_gz(&path)?;
        let (l, p) = parse_batch(&path, &bytes)?;
        labels.extend(l);
        pixels.extend(p);
    }
    let n = labels.len() as i64;
    Ok(Dataset { x: images_tensor(&pixels, [n, 3, 32, 32])?, y: labels_tensor(&labels)?, num_classes: 10 })
}

/// Load CIFAR-10 from `dir`: images `[N,3,32,32]` in `[0,1]`, labels `0..10`.
pub fn load_cifar10(dir: &Path) -> Result<Split> {
    if !dir.is_dir() {
        return Err(DataError::Spec(format!(
            "CIFAR-10 directory {} does not exist (expected data_batch_1..5.bin and test_batch.bin, the binary version)",
            dir.display()
        )));
    }
    let train = load_files(dir, &TRAIN_FILES)?;
    let test = load_files(dir, &[TEST_FILE])?;
    Ok(Split { name: "cifar10".into(), train, test, feature_names: vec![], feature_std: vec![], vocab: None })
}
