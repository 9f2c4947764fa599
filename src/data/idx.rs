//! The IDX format of MNIST and Fashion-MNIST (LeCun et al., <http://yann.lecun.com/exdb/mnist/>):
//! a big-endian header `00 00 <type> <ndim>` followed by `ndim` u32 sizes, then the data.
//! We accept only type `0x08` (unsigned byte); images have 3 dims `[N, rows, cols]`, labels 1.

use std::path::Path;

use super::{files, images_tensor, labels_tensor, DataError, Dataset, Result, Split};

/// Element type code for unsigned bytes.
pub const TYPE_U8: u8 = 0x08;

/// A parsed IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parse an IDX byte buffer read from `path`, requiring `ndim` dimensions. Errors (naming the
/// file) on: a short header, a wrong magic/type/ndim, a zero size, and data shorter (truncated)
/// or longer (trailing bytes) than the header declares.
pub fn parse(path: &Path, bytes: &[u8], ndim: usize) -> Result<Idx> {
    let bad = |what: String| DataError::Format { path: path.to_path_buf(), what };
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes: too short for an IDX header (truncated?)", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected_magic = ((TYPE_U8 as u32) << 8) | ndim as u32;
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != TYPE_U8 || bytes[3] as usize != ndim {
        return Err(bad(format!(
            "wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (unsigned bytes, {ndim} dimension{})",
            if ndim == 1 { "" } else { "s" }
        )));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!("{} bytes: truncated inside the {header}-byte IDX header", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(bad(format!("IDX header declares size 0 in dimension {i} (dims {dims:?})")));
    }
    let expected: usize = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("IDX dims {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have < expected {
        return Err(bad(format!(
            "truncated: header declares dims {dims:?} = {expected} data bytes, but the file has {have}"
        )));
    }
    if have > expected {
        return Err(bad(format!(
            "{} trailing bytes after the {expected} data bytes that header dims {dims:?} declare",
            have - expected
        )));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

/// Images and labels of one part, checked against each other and against the expected geometry.
fn load_part(dir: &Path, key: &str, images: &str, labels: &str, verify: bool) -> Result<Dataset> {
    let (ipath, ibytes) = files::read_pinned(dir, key, images, verify)?;
    let (lpath, lbytes) = files::read_pinned(dir, key, labels, verify)?;
    let img = parse(&ipath, &ibytes, 3)?;
    drop(ibytes);
    let lab = parse(&lpath, &lbytes, 1)?;
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if (rows, cols) != (28, 28) {
        return Err(DataError::Format {
            path: ipath,
            what: format!("images are {rows}x{cols}, expected 28x28 for an MNIST-like dataset"),
        });
    }
    if lab.dims[0] != n {
        return Err(DataError::Format {
            path: lpath.clone(),
            what: format!("{} labels, but {} has {n} images", lab.dims[0], ipath.display()),
        });
    }
    if let Some((i, &l)) = lab.data.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(DataError::Format {
            path: lpath,
            what: format!("label {l} at index {i} is outside 0..10"),
        });
    }
    let labels: Vec<i64> = lab.data.iter().map(|&l| l as i64).collect();
    Ok(Dataset {
        x: images_tensor(&img.data, [n as i64, 1, rows as i64, cols as i64])?,
        y: labels_tensor(&labels)?,
        num_classes: 10,
    })
}

/// Load an MNIST-like dataset (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, any accepted spelling) from `dir`,
/// verifying against the pins `<key>/<file>` when `verify`. Images `[N,1,28,28]` in `[0,1]`.
pub fn load_mnist_like(key: &str, dir: &Path, verify: bool) -> Result<Split> {
    let train = load_part(dir, key, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", verify)?;
    let test = load_part(dir, key, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", verify)?;
    Ok(Split { name: key.to_string(), train, test, feature_names: vec![], feature_std: vec![], vocab: None })
}

/// Encode an IDX file of unsigned bytes (used by tests and the fixture recipe's checks).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_encode() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let b = encode(&[2, 3, 4], &data);
        assert_eq!(parse(Path::new("f"), &b, 3).unwrap(), Idx { dims: vec![2, 3, 4], data });
    }

    #[test]
    fn parse_rejects_bad_headers_and_sizes() {
        let p = Path::new("/d/train-images-idx3-ubyte");
        let good = encode(&[2, 2, 2], &[1; 8]);
        let msg = |b: &[u8], nd| parse(p, b, nd).unwrap_err().to_string();
        let m = msg(&good, 1);
        assert!(m.contains("magic") && m.contains("0x00000803") && m.contains("train-images"), "{m}");
        let mut wrong_type = good.clone();
        wrong_type[2] = 0x0d;
        assert!(msg(&wrong_type, 3).contains("magic"));
        assert!(msg(&good[..good.len() - 1], 3).contains("truncated"));
        assert!(msg(&good[..10], 3).contains("truncated inside"));
        assert!(msg(&good[..2], 3).contains("too short"));
        let mut long = good.clone();
        long.push(0);
        assert!(msg(&long, 3).contains("1 trailing bytes"));
        assert!(msg(&encode(&[0, 2, 2], &[]), 3).contains("size 0"));
    }
}
