//! The dataset grammar: which data a run uses, as a name on the command line
//! (`fashion-mnist`, `csv:PATH`, `cifar10:DIR`, …) or a table in a TOML spec, one type for both.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::text::TextOptions;
use super::{synthetic, DataError, Result};

/// Defaults of the CSV spec (one source of truth for serde and the CLI).
pub mod csv_defaults {
    pub const LABEL_COLUMN: &str = "label";
    pub const SEPARATOR: char = ',';
    pub const TEST_FRACTION: f64 = 0.2;
    pub const SEED: u64 = 0;
    pub(crate) fn label_column() -> String {
        LABEL_COLUMN.to_string()
    }
    pub(crate) fn separator() -> char {
        SEPARATOR
    }
    pub(crate) fn test_fraction() -> f64 {
        TEST_FRACTION
    }
}

/// What to load. In TOML/JSON: `{ kind = "fashion-mnist" }`, `{ kind = "csv", path = "bank-full.csv",
/// label-column = "y", separator = ";", positive-label = "yes" }`, `{ kind = "synthetic", shape = [16] }`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields, from = "SpecRepr")]
pub enum DatasetSpec {
    /// Fashion-MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    FashionMnist,
    /// MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    Mnist,
    /// UCI Adult, complete rows only: 30,162 + 15,060, 104 features, 2 classes (fetched).
    Adult,
    /// The committed Fashion-MNIST fixture: 1000 + 300 images, balanced.
    FashionMnistMini,
    /// The committed Adult fixture: the first 300 rows of adult.data and 150 of adult.test.
    AdultMini,
    /// A user's CSV file with a header row, split train/test by a seeded shuffle.
    #[serde(rename_all = "kebab-case")]
    Csv {
        path: PathBuf,
        /// Header name of the label column.
        #[serde(default = "csv_defaults::label_column")]
        label_column: String,
        /// Field separator (one ASCII character).
        #[serde(default = "csv_defaults::separator")]
        separator: char,
        /// With it, label = 1 where the label column equals it and 0 elsewhere; without it, the
        /// distinct labels sorted (numerically if all are integers) become `0..K`.
        #[serde(default)]
        positive_label: Option<String>,
        /// Fraction of rows in the test part, in (0, 1).
        #[serde(default = "csv_defaults::test_fraction")]
        test_fraction: f64,
        /// Seed of the train/test shuffle (stream `Data`).
        #[serde(default)]
        seed: u64,
    },
    /// The SpamAssassin public corpus (fetched; or a corpus of the same layout in `dir`), 6,046
    /// mails as token ids `[N, T]`, ham/spam or five groups; see [`super::text`].
    Spamassassin(TextOptions),
    /// The committed mail fixture (48 short mails written for the tests, same layout).
    SpamassassinMini(TextOptions),
    /// CIFAR-10 binary version in `dir` (`data_batch_1..5.bin`, `test_batch.bin`); not fetchable.
    Cifar10 { dir: PathBuf },
    /// A Gaussian mixture; see [`synthetic`].
    Synthetic {
        /// Example shape: `[C, H, W]` gives images in `[0,1]`, `[D]` gives standardised tabular rows.
        shape: Vec<i64>,
        #[serde(default = "synthetic::default_classes")]
        classes: i64,
        #[serde(default = "synthetic::default_train")]
        train: usize,
        #[serde(default = "synthetic::default_test")]
        test: usize,
        /// Distance scale between class means in units of the noise standard deviation.
        #[serde(default = "synthetic::default_separation")]
        separation: f64,
        #[serde(default)]
        seed: u64,
    },
}

/// Deserialisation mirror of [`DatasetSpec`]: serde ignores unknown fields beside the tag of a
/// *unit* variant, so the unit variants are empty struct variants here (then rejected).
/// In TOML/JSON: `{ kind = "fashion-mnist" }`, `{ kind = "csv", path = "bank-full.csv",
/// label-column = "y", separator = ";", positive-label = "yes" }`, `{ kind = "synthetic", shape = [16] }`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum SpecRepr {
    /// Fashion-MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    FashionMnist {},
    /// MNIST, 60k + 10k, `[N,1,28,28]`, 10 classes (fetched).
    Mnist {},
    /// UCI Adult, complete rows only: 30,162 + 15,060, 104 features, 2 classes (fetched).
    Adult {},
    /// The committed Fashion-MNIST fixture: 1000 + 300 images, balanced.
    FashionMnistMini {},
    /// The committed Adult fixture: the first 300 rows of adult.data and 150 of adult.test.
    AdultMini {},
    /// A user's CSV file with a header row, split train/test by a seeded shuffle.
    #[serde(rename_all = "kebab-case")]
    Csv {
        path: PathBuf,
        /// Header name of the label column.
        #[serde(default = "csv_defaults::label_column")]
        label_column: String,
        /// Field separator (one ASCII character).
        #[serde(default = "csv_defaults::separator")]
        separator: char,
        /// With it, label = 1 where the label column equals it and 0 elsewhere; without it, the
        /// distinct labels sorted (numerically if all are integers) become `0..K`.
        #[serde(default)]
        positive_label: Option<String>,
        /// Fraction of rows in the test part, in (0, 1).
        #[serde(default = "csv_defaults::test_fraction")]
        test_fraction: f64,
        /// Seed of the train/test shuffle (stream `Data`).
        #[serde(default)]
        seed: u64,
    },
    /// The SpamAssassin public corpus (fetched; or a corpus of the same layout in `dir`), 6,046
    /// mails as token ids `[N, T]`, ham/spam or five groups; see [`super::text`].
    Spamassassin(TextOptions),
    /// The committed mail fixture (48 short mails written for the tests, same layout).
    SpamassassinMini(TextOptions),
    /// CIFAR-10 binary version in `dir` (`data_batch_1..5.bin`, `test_batch.bin`); not fetchable.
    Cifar10 { dir: PathBuf },
    /// A Gaussian mixture; see [`synthetic`].
    Synthetic {
        /// Example shape: `[C, H, W]` gives images in `[0,1]`, `[D]` gives standardised tabular rows.
        shape: Vec<i64>,
        #[serde(default = "synthetic::default_classes")]
        classes: i64,
        #[serde(default = "synthetic::default_train")]
        train: usize,
        #[serde(default = "synthetic::default_test")]
        test: usize,
        /// Distance scale between class means in units of the noise standard deviation.
        #[serde(default = "synthetic::default_separation")]
        separation: f64,
        #[serde(default)]
        seed: u64,
    },
}

impl From<SpecRepr> for DatasetSpec {
    fn from(r: SpecRepr) -> Self {
        match r {
            SpecRepr::FashionMnist {} => Self::FashionMnist,
            SpecRepr::Mnist {} => Self::Mnist,
            SpecRepr::Adult {} => Self::Adult,
            SpecRepr::FashionMnistMini {} => Self::FashionMnistMini,
            SpecRepr::AdultMini {} => Self::AdultMini,
            SpecRepr::Csv { path, label_column, separator, positive_label, test_fraction, seed } => {
                Self::Csv { path, label_column, separator, positive_label, test_fraction, seed }
            }
            SpecRepr::Cifar10 { dir } => Self::Cifar10 { dir },
            SpecRepr::Spamassassin(o) => Self::Spamassassin(o),
            SpecRepr::SpamassassinMini(o) => Self::SpamassassinMini(o),
            SpecRepr::Synthetic { shape, classes, train, test, separation, seed } => {
                Self::Synthetic { shape, classes, train, test, separation, seed }
            }
        }
    }
}

impl DatasetSpec {
    /// A short name: the CLI name for named datasets, `csv:<path>`, `cifar10:<dir>`, `synthetic-…`.
    pub fn name(&self) -> String {
        match self {
            Self::FashionMnist => "fashion-mnist".into(),
            Self::Mnist => "mnist".into(),
            Self::Adult => "adult".into(),
            Self::FashionMnistMini => "fashion-mnist-mini".into(),
            Self::AdultMini => "adult-mini".into(),
            Self::Csv { path, .. } => format!("csv:{}", path.display()),
            Self::Cifar10 { dir } => format!("cifar10:{}", dir.display()),
            Self::Spamassassin(TextOptions { dir: Some(d), .. }) => {
                format!("spamassassin:dir={}", d.display())
            }
            Self::Spamassassin(_) => "spamassassin".into(),
            Self::SpamassassinMini(_) => "spamassassin-mini".into(),
            Self::Synthetic { shape, .. } if shape.len() == 1 => "synthetic-tabular".into(),
            Self::Synthetic { .. } => "synthetic-images".into(),
        }
    }

    /// The synthetic image spec behind the name `synthetic-images`: `[1,28,28]`, 10 classes.
    pub fn synthetic_images() -> Self {
        Self::Synthetic {
            shape: vec![1, 28, 28],
            classes: synthetic::default_classes(),
            train: synthetic::default_train(),
            test: synthetic::default_test(),
            separation: synthetic::default_separation(),
            seed: 0,
        }
    }

    /// The synthetic tabular spec behind the name `synthetic-tabular`: 16 features, 2 classes.
    pub fn synthetic_tabular() -> Self {
        Self::Synthetic {
            shape: vec![16],
            classes: 2,
            train: synthetic::default_train(),
            test: synthetic::default_test(),
            separation: synthetic::default_separation(),
            seed: 0,
        }
    }

    /// Whether the examples are images (`[C,H,W]`) rather than tabular rows.
    pub fn is_image(&self) -> bool {
        match self {
            Self::FashionMnist | Self::Mnist | Self::FashionMnistMini | Self::Cifar10 { .. } => true,
            Self::Adult
            | Self::AdultMini
            | Self::Csv { .. }
            | Self::Spamassassin(_)
            | Self::SpamassassinMini(_) => false,
            Self::Synthetic { shape, .. } => shape.len() == 3,
        }
    }
}

/// The names `FromStr` accepts, for help texts.
pub const SPEC_NAMES: &str = "fashion-mnist, mnist, adult, fashion-mnist-mini, adult-mini, \
     synthetic-images, synthetic-tabular, spamassassin[:max_len=T,vocab=V,labels=binary|groups,seed=S,dir=PATH], \
     spamassassin-mini[:…], csv:PATH[,label=COL][,sep=C][,positive=VALUE][,test_fraction=F][,seed=S], cifar10:DIR";

impl FromStr for DatasetSpec {
    type Err = DataError;
    /// CLI names. `csv:PATH` gets the CSV defaults ([`csv_defaults`]); the CLI's flags then
    /// override its fields.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s {
            "fashion-mnist" => Self::FashionMnist,
            "mnist" => Self::Mnist,
            "adult" => Self::Adult,
            "fashion-mnist-mini" => Self::FashionMnistMini,
            "adult-mini" => Self::AdultMini,
            "synthetic-images" => Self::synthetic_images(),
            "synthetic-tabular" => Self::synthetic_tabular(),
            "spamassassin" => Self::Spamassassin(TextOptions::default()),
            "spamassassin-mini" => Self::SpamassassinMini(TextOptions::default()),
            _ => {
                if let Some(o) = s.strip_prefix("spamassassin:") {
                    return Ok(Self::Spamassassin(TextOptions::parse(o, s)?));
                }
                if let Some(o) = s.strip_prefix("spamassassin-mini:") {
                    let o = TextOptions::parse(o, s)?;
                    if o.dir.is_some() {
                        return Err(DataError::Spec(format!(
                            "`{s}`: dir= applies to spamassassin, not to the fixture"
                        )));
                    }
                    return Ok(Self::SpamassassinMini(o));
                }
                if let Some(p) = s.strip_prefix("csv:").filter(|p| !p.is_empty()) {
                    parse_csv_spec(p)?
                } else if let Some(d) = s.strip_prefix("cifar10:").filter(|d| !d.is_empty()) {
                    Self::Cifar10 { dir: PathBuf::from(d) }
                } else {
                    return Err(DataError::Spec(format!(
                        "unknown dataset `{s}`; expected one of: {SPEC_NAMES}"
                    )));
                }
            }
        })
    }
}

/// `csv:PATH[,label=COL][,sep=C][,positive=VALUE][,test_fraction=F][,seed=S]` — the string form
/// of [`DatasetSpec::Csv`] used by `--dataset` and sweep specs; unset options take
/// [`csv_defaults`]. Example (UCI Bank Marketing): `csv:bank-full.csv,label=y,sep=;,positive=yes`.
fn parse_csv_spec(text: &str) -> Result<DatasetSpec> {
    let mut parts = text.split(',');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err(DataError::Spec(format!("`csv:{text}`: the path is empty")));
    }
    let (mut label_column, mut separator, mut positive_label) =
        (csv_defaults::label_column(), csv_defaults::SEPARATOR, None);
    let (mut test_fraction, mut seed) = (csv_defaults::TEST_FRACTION, csv_defaults::SEED);
    for opt in parts {
        let bad = |why: &str| DataError::Spec(format!("`csv:{text}`: option `{opt}` {why}"));
        let (k, v) = opt.split_once('=').ok_or_else(|| bad("is not key=value"))?;
        match k.trim() {
            "label" => label_column = v.to_string(),
            "sep" => {
                let mut c = v.chars();
                separator = match (c.next(), c.next()) {
                    (Some(ch), None) => ch,
                    _ => return Err(bad("must be a single character")),
                };
            }
            "positive" => positive_label = Some(v.to_string()),
            "test_fraction" => test_fraction = v.parse().map_err(|_| bad("is not a number"))?,
            "seed" => seed = v.parse().map_err(|_| bad("is not a non-negative integer"))?,
            _ => return Err(bad("is unknown (expected label, sep, positive, test_fraction, seed)")),
        }
    }
    Ok(DatasetSpec::Csv {
        path: PathBuf::from(path),
        label_column,
        separator,
        positive_label,
        test_fraction,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_parse_and_round_trip() {
        for name in [
            "fashion-mnist",
            "mnist",
            "adult",
            "fashion-mnist-mini",
            "adult-mini",
            "synthetic-images",
            "synthetic-tabular",
            "spamassassin",
            "spamassassin-mini",
        ] {
            let s: DatasetSpec = name.parse().unwrap();
            assert_eq!(s.name(), name);
        }
        let c: DatasetSpec = "csv:/tmp/bank-full.csv".parse().unwrap();
        assert_eq!(c.name(), "csv:/tmp/bank-full.csv");
        assert!(matches!(c, DatasetSpec::Csv { separator: ',', .. }));
        let d: DatasetSpec = "cifar10:/data/cifar".parse().unwrap();
        assert_eq!(d, DatasetSpec::Cifar10 { dir: "/data/cifar".into() });
        let e = "imagenet".parse::<DatasetSpec>().unwrap_err().to_string();
        assert!(e.contains("imagenet") && e.contains("fashion-mnist"), "{e}");
        assert!("csv:".parse::<DatasetSpec>().is_err());
    }

    #[test]
    fn spec_serde_toml_and_json() {
        let s: DatasetSpec = toml::from_str(
            "kind = \"csv\"\npath = \"bank-full.csv\"\nlabel-column = \"y\"\nseparator = \";\"\npositive-label = \"yes\"\n",
        )
        .unwrap();
        assert_eq!(
            s,
            DatasetSpec::Csv {
                path: "bank-full.csv".into(),
                label_column: "y".into(),
                separator: ';',
                positive_label: Some("yes".into()),
                test_fraction: csv_defaults::TEST_FRACTION,
                seed: 0
            }
        );
        let j = serde_json::to_string(&DatasetSpec::FashionMnist).unwrap();
        assert_eq!(j, r#"{"kind":"fashion-mnist"}"#);
        let back: DatasetSpec =
            serde_json::from_str(&serde_json::to_string(&DatasetSpec::synthetic_images()).unwrap()).unwrap();
        assert_eq!(back, DatasetSpec::synthetic_images());
        let syn: DatasetSpec = toml::from_str("kind = \"synthetic\"\nshape = [8]\n").unwrap();
        assert!(matches!(syn, DatasetSpec::Synthetic { classes: 10, train: 1000, .. }));
        // Unknown fields are rejected, naming the field.
        let err = toml::from_str::<DatasetSpec>("kind = \"csv\"\npath = \"a.csv\"\nlabel_col = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("label_col"), "{err}");
        assert!(toml::from_str::<DatasetSpec>("kind = \"mnist\"\nextra = 1\n").is_err());
    }
}
