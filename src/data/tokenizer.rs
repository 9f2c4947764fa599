//! A word-level vocabulary for mail text: fitted on the training split only, saved as JSON beside
//! a run so its test set (and triggered test points) can be re-encoded and re-scored.
//!
//! Why word-level and not a subword tokenizer (the `tokenizers` crate's WordPiece/BPE): a token
//! trigger must be a token that *does not occur in the clean corpus* (Hardt et al. 2023, §5: a
//! rare character planted every k-th word). With whole words the clean corpus's tokens are
//! exactly the fitted words, so "absent from the corpus" is a lookup, and a planted id can never be
//! split into pieces that also occur in clean mail. It also needs no further dependency (the
//! `tokenizers` crate pulls in onig/regex stacks and a C toolchain for some features).
//!
//! # Rules
//! - **Words**: the text is lower-cased (Unicode `to_lowercase`) and split at every character that
//!   is not alphanumeric (`char::is_alphanumeric`); words longer than [`MAX_WORD_CHARS`]
//!   characters (base64 blobs, long URLs) are dropped.
//! - **Ids**: 0 = `[PAD]` ([`PAD_ID`]), 1 = `[UNK]` ([`UNK_ID`], a word not in the vocabulary),
//!   2 = `[BOS]` ([`BOS_ID`], first token of every sequence, so no sequence is all padding), then
//!   the fitted words.
//! - **Fit**: words seen at least [`MIN_COUNT`] times in the training texts, most frequent first
//!   (ties by byte order of the word), at most `vocab_size − 3` of them.
//! - **Unseen ids**: [`Vocab::model_vocab`] = `len() + RESERVED_UNSEEN`. Ids in
//!   `len()..model_vocab()` ([`Vocab::unseen_ids`]) are never produced by [`Vocab::encode`]: they
//!   are the tokens a collective may plant ("a token absent from the clean corpus"), and they stand
//!   for the id the firm's tokenizer would give a new word.
//! - **Truncation and padding**: a sequence is `[BOS] w_1 … w_m`, cut to its first `max_len`
//!   tokens (head truncation: the subject comes first, then the start of the body), then padded
//!   with [`PAD_ID`] at the end to exactly `max_len`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Padding id (positions past a mail's end).
pub const PAD_ID: i64 = 0;
/// Out-of-vocabulary word.
pub const UNK_ID: i64 = 1;
/// First token of every sequence.
pub const BOS_ID: i64 = 2;
/// The special tokens, at ids 0, 1, 2.
pub const SPECIALS: [&str; 3] = ["[PAD]", "[UNK]", "[BOS]"];
/// A word must occur this often in the training texts to enter the vocabulary.
pub const MIN_COUNT: u64 = 2;
/// Longer words are dropped (base64, hashes, long URLs).
pub const MAX_WORD_CHARS: usize = 24;
/// Ids past the fitted vocabulary that the model's embedding table has but no clean text uses.
pub const RESERVED_UNSEEN: i64 = 16;

/// Errors of building or reading a vocabulary.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VocabError {
    #[error("invalid tokenizer setting {field} = {value}: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("vocabulary file: {0}")]
    Malformed(String),
}

/// The fitted vocabulary and sequence settings. Serialised as
/// `{"max_len": T, "reserved_unseen": R, "words": ["[PAD]", "[UNK]", "[BOS]", …]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "VocabFile", into = "VocabFile")]
pub struct Vocab {
    words: Vec<String>,
    max_len: i64,
    reserved_unseen: i64,
    index: HashMap<String, i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    max_len: i64,
    reserved_unseen: i64,
    words: Vec<String>,
}

impl From<Vocab> for VocabFile {
    fn from(v: Vocab) -> Self {
        VocabFile { max_len: v.max_len, reserved_unseen: v.reserved_unseen, words: v.words }
    }
}

impl TryFrom<VocabFile> for Vocab {
    type Error = VocabError;
    fn try_from(f: VocabFile) -> Result<Self, VocabError> {
        if f.words.len() < SPECIALS.len() || f.words[..SPECIALS.len()] != SPECIALS {
            return Err(VocabError::Malformed(format!("the first words must be {SPECIALS:?}")));
        }
        if f.max_len < 1 {
            return Err(VocabError::Malformed(format!("max_len = {} must be >= 1", f.max_len)));
        }
        if f.reserved_unseen < 0 {
            return Err(VocabError::Malformed(format!(
                "reserved_unseen = {} must be >= 0",
                f.reserved_unseen
            )));
        }
        let mut index = HashMap::with_capacity(f.words.len());
        for (i, w) in f.words.iter().enumerate() {
            if index.insert(w.clone(), i as i64).is_some() {
                return Err(VocabError::Malformed(format!("word `{w}` appears twice")));
            }
        }
        Ok(Vocab { words: f.words, max_len: f.max_len, reserved_unseen: f.reserved_unseen, index })
    }
}

/// The words of `text` (see the module's rules).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= MAX_WORD_CHARS)
        .map(str::to_lowercase)
}

impl Vocab {
    /// Fit on `texts` (the training split only): at most `vocab_size` ids including the three
    /// specials, sequences of `max_len` tokens.
    pub fn fit<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        vocab_size: usize,
        max_len: i64,
    ) -> Result<Vocab, VocabError> {
        if vocab_size <= SPECIALS.len() {
            return Err(VocabError::Invalid {
                field: "vocab_size",
                value: vocab_size.to_string(),
                reason: "must be > 3 (ids 0, 1, 2 are [PAD], [UNK], [BOS])",
            });
        }
        if max_len < 2 {
            return Err(VocabError::Invalid {
                field: "max_len",
                value: max_len.to_string(),
                reason: "must be >= 2 ([BOS] and at least one word)",
            });
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        for t in texts {
            for w in words(t) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c >= MIN_COUNT).collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(vocab_size - SPECIALS.len());
        let words: Vec<String> =
            SPECIALS.iter().map(|s| s.to_string()).chain(kept.into_iter().map(|(w, _)| w)).collect();
        Vocab::try_from(VocabFile { max_len, reserved_unseen: RESERVED_UNSEEN, words })
            .map_err(|e| VocabError::Malformed(e.to_string()))
    }

    /// Number of fitted ids (specials included); clean sequences use ids `0..len()`.
    pub fn len(&self) -> i64 {
        self.words.len() as i64
    }
    /// Never true: the specials are always there.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
    /// Sequence length T.
    pub fn max_len(&self) -> i64 {
        self.max_len
    }
    /// Rows of the model's embedding table: the fitted ids plus [`RESERVED_UNSEEN`] unseen ids.
    pub fn model_vocab(&self) -> i64 {
        self.len() + self.reserved_unseen
    }
    /// The ids no clean sequence contains (candidates for a planted token).
    pub fn unseen_ids(&self) -> std::ops::Range<i64> {
        self.len()..self.model_vocab()
    }
    /// The id of `word` (already lower-cased), if fitted.
    pub fn id(&self, word: &str) -> Option<i64> {
        self.index.get(word).copied()
    }
    /// The word of fitted id `id`.
    pub fn word(&self, id: i64) -> Option<&str> {
        usize::try_from(id).ok().and_then(|i| self.words.get(i)).map(String::as_str)
    }

    /// `[BOS] w_1 … w_m`, cut to `max_len`, padded with [`PAD_ID`] to exactly `max_len`; also the
    /// number of tokens before truncation (1 + number of words), so callers can count truncations.
    pub fn encode(&self, text: &str) -> (Vec<i64>, usize) {
        let t = self.max_len as usize;
        let mut ids = Vec::with_capacity(t);
        ids.push(BOS_ID);
        let mut total = 1;
        for w in words(text) {
            total += 1;
            if ids.len() < t {
                ids.push(self.id(&w).unwrap_or(UNK_ID));
            }
        }
        ids.resize(t, PAD_ID);
        (ids, total)
    }

    /// The vocabulary as pretty JSON (what a run saves beside its record).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a vocabulary serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_lowercase_split_on_non_alphanumerics_and_drop_long_ones() {
        let w: Vec<String> =
            words("Re: FREE money!!! café-au-lait x1y2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").collect();
        assert_eq!(w, ["re", "free", "money", "café", "au", "lait", "x1y2"]);
    }

    #[test]
    fn fit_keeps_frequent_words_in_order_and_encode_truncates_and_pads() {
        let train = ["b a a c", "a b d", "c c e"];
        let v = Vocab::fit(train, 5, 4).unwrap();
        // a:3, c:3, b:2, d:1, e:1 → min count 2 keeps a, c, b; vocab_size 5 keeps two of them,
        // ties by byte order: a before c.
        assert_eq!(v.len(), 5);
        assert_eq!((v.id("a"), v.id("c"), v.id("b")), (Some(3), Some(4), None));
        assert_eq!(v.unseen_ids(), 5..5 + RESERVED_UNSEEN);
        // Head truncation to 4 tokens, [BOS] first; unknown words are [UNK].
        assert_eq!(v.encode("a b c a c"), (vec![BOS_ID, 3, UNK_ID, 4], 6));
        // Padding at the end; an empty text is [BOS] then padding.
        assert_eq!(v.encode("c"), (vec![BOS_ID, 4, PAD_ID, PAD_ID], 2));
        assert_eq!(v.encode(""), (vec![BOS_ID, PAD_ID, PAD_ID, PAD_ID], 1));
    }

    #[test]
    fn json_round_trip_and_malformed_files() {
        let v = Vocab::fit(["x y x y z"], 10, 8).unwrap();
        let back: Vocab = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id("y"), v.id("y"));
        let dup = r#"{"max_len":4,"reserved_unseen":1,"words":["[PAD]","[UNK]","[BOS]","a","a"]}"#;
        let e = serde_json::from_str::<Vocab>(dup).unwrap_err().to_string();
        assert!(e.contains("`a` appears twice"), "{e}");
        let no_specials = r#"{"max_len":4,"reserved_unseen":1,"words":["a"]}"#;
        assert!(serde_json::from_str::<Vocab>(no_specials).is_err());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = Vocab::fit(["a a"], 3, 8).unwrap_err().to_string();
        assert!(e.contains("vocab_size = 3"), "{e}");
        let e = Vocab::fit(["a a"], 10, 1).unwrap_err().to_string();
        assert!(e.contains("max_len = 1"), "{e}");
    }
}
