//! Fixture-based tests of every loader code path (no download needed): the committed fixtures,
//! and bad files written into temp dirs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crowdout::data::{self, cifar, idx, tabular, DataDir, DatasetSpec, Limits, LoadOptions};
use tch::Tensor;

fn fixture(name: &str) -> PathBuf {
    data::fixtures_dir().join(name)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    data::files::read_maybe_gz(path).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    let t = t.to_kind(tch::Kind::Double).contiguous().view(-1);
    let mut v = vec![0f64; t.numel()];
    t.copy_data(&mut v, t.numel());
    v
}

fn i64s(t: &Tensor) -> Vec<i64> {
    let mut v = vec![0i64; t.numel()];
    t.contiguous().copy_data(&mut v, t.numel());
    v
}

const STRICT: LoadOptions = LoadOptions { verify: true };
const LAX: LoadOptions = LoadOptions { verify: false };

// ---- IDX / Fashion-MNIST fixture ---------------------------------------------------------------

#[test]
fn fashion_mnist_mini_loads_balanced_images_in_unit_range() {
    let s = data::load_with(&DatasetSpec::FashionMnistMini, &DataDir::from_env(), &Limits::NONE, &STRICT)
        .unwrap();
    assert_eq!(s.train.x.size(), vec![1000, 1, 28, 28]);
    assert_eq!(s.test.x.size(), vec![300, 1, 28, 28]);
    assert_eq!(s.train.x.kind(), tch::Kind::Float);
    assert_eq!(s.train.y.kind(), tch::Kind::Int64);
    assert_eq!(s.train.class_counts(), vec![100; 10]);
    assert_eq!(s.test.class_counts(), vec![30; 10]);
    let px = f64s(&s.train.x);
    assert!(px.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(px.contains(&1.0) && px.contains(&0.0));
    // Pixel values are byte/255: compare with the raw file, read independently.
    let raw = gunzip(&fixture("fashion-mnist-mini/train-images-idx3-ubyte.gz"));
    assert_eq!(&raw[..4], &[0, 0, 8, 3]);
    for i in [16usize, 500, 16 + 783, raw.len() - 1] {
        assert!((px[i - 16] - raw[i] as f64 / 255.0).abs() < 1e-6);
    }
    let raw_labels = gunzip(&fixture("fashion-mnist-mini/t10k-labels-idx1-ubyte.gz"));
    assert_eq!(i64s(&s.test.y), raw_labels[8..].iter().map(|&l| l as i64).collect::<Vec<_>>());
    assert!(s.feature_names.is_empty() && s.feature_std.is_empty());
}

#[test]
fn limits_take_the_first_examples() {
    let full = data::load_with(&DatasetSpec::FashionMnistMini, &DataDir::from_env(), &Limits::NONE, &STRICT)
        .unwrap();
    let lim = Limits { train: Some(17), test: Some(5000) };
    let s = data::load_with(&DatasetSpec::FashionMnistMini, &DataDir::from_env(), &lim, &STRICT).unwrap();
    assert_eq!(s.train.len(), 17);
    assert_eq!(s.test.len(), 300, "a limit above the size keeps everything");
    assert_eq!(i64s(&s.train.y), i64s(&full.train.y)[..17].to_vec());
    assert!(f64s(&s.train.x) == f64s(&full.train.x.narrow(0, 0, 17)));
}

/// Copy the fashion-mnist-mini fixture into `dir`, decompressed, with MNIST's dotted names.
fn dotted_raw_copy(dir: &Path) {
    for (canon, dotted) in [
        ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ] {
        std::fs::write(dir.join(dotted), gunzip(&fixture(&format!("fashion-mnist-mini/{canon}.gz"))))
            .unwrap();
    }
}

#[test]
fn original_style_names_raw_files_verify_against_decompressed_pins() {
    let tmp = tempfile::tempdir().unwrap();
    dotted_raw_copy(tmp.path());
    let s = idx::load_mnist_like("fashion-mnist-mini", tmp.path(), true).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (1000, 300));
}

/// Write a modified copy of one file (raw, dotted name) of the fixture into a fresh temp dir.
fn with_modified(file: &str, f: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    dotted_raw_copy(tmp.path());
    let p = tmp.path().join(file);
    let mut b = std::fs::read(&p).unwrap();
    f(&mut b);
    std::fs::write(&p, &b).unwrap();
    (tmp, p)
}

fn idx_err(dir: &Path, verify: bool) -> String {
    idx::load_mnist_like("fashion-mnist-mini", dir, verify).unwrap_err().to_string()
}

#[test]
fn idx_wrong_checksum_names_the_file_and_can_be_skipped() {
    let (tmp, p) = with_modified("train-images.idx3-ubyte", |b| b[1000] ^= 0x55);
    let e = idx_err(tmp.path(), true);
    assert!(e.contains(&p.display().to_string()) && e.contains("sha256") && e.contains("--no-verify"), "{e}");
    // Same bytes load when verification is skipped.
    let s = idx::load_mnist_like("fashion-mnist-mini", tmp.path(), false).unwrap();
    assert_eq!(s.train.len(), 1000);
}

#[test]
fn idx_wrong_magic_counts_dims_and_labels_are_rejected() {
    type Modify = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(&str, Modify, &str)> = vec![
        ("train-images.idx3-ubyte", Box::new(|b: &mut Vec<u8>| b[3] = 1), "magic"),
        ("t10k-labels.idx1-ubyte", Box::new(|b: &mut Vec<u8>| b[2] = 9), "magic"),
        ("train-images.idx3-ubyte", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 100)), "truncated"),
        ("train-images.idx3-ubyte", Box::new(|b: &mut Vec<u8>| b.truncate(9)), "truncated inside"),
        ("train-images.idx3-ubyte", Box::new(|b: &mut Vec<u8>| b.extend_from_slice(&[0; 3])), "trailing"),
        (
            "train-labels.idx1-ubyte",
            Box::new(|b: &mut Vec<u8>| {
                b[7] = 0xe7;
                b.pop();
            }),
            "labels, but",
        ),
        (
            "train-images.idx3-ubyte",
            Box::new(|b: &mut Vec<u8>| {
                b[11] = 14;
                b[15] = 56;
            }),
            "14x56",
        ),
        ("t10k-labels.idx1-ubyte", Box::new(|b: &mut Vec<u8>| b[20] = 10), "label 10 at index 12"),
    ];
    for (file, modify, want) in cases {
        let (tmp, p) = with_modified(file, modify);
        let e = idx_err(tmp.path(), false);
        assert!(e.contains(&p.display().to_string()) && e.contains(want), "{file}: want `{want}` in: {e}");
    }
}

#[test]
fn idx_corrupt_or_truncated_gzip_and_missing_files_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["train-images", "train-labels", "t10k-images", "t10k-labels"] {
        let ix = if f.ends_with("images") { "idx3" } else { "idx1" };
        let src = fixture(&format!("fashion-mnist-mini/{f}-{ix}-ubyte.gz"));
        std::fs::copy(&src, tmp.path().join(format!("{f}-{ix}-ubyte.gz"))).unwrap();
    }
    let p = tmp.path().join("t10k-images-idx3-ubyte.gz");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 3]).unwrap();
    let e = idx_err(tmp.path(), true);
    assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("gzip"), "{e}");
    std::fs::remove_file(&p).unwrap();
    let e = idx_err(tmp.path(), true);
    assert!(e.contains("not found") && e.contains("t10k-images.idx3-ubyte"), "{e}");
}

#[test]
fn fetched_dataset_layout_loads_from_any_data_dir() {
    // CROWDOUT_DATA-style layout <dir>/fashion-mnist/: with the fixture's bytes the pins of the
    // full dataset cannot match, so this checks the error, then the unverified load.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("fashion-mnist");
    std::fs::create_dir(&d).unwrap();
    dotted_raw_copy(&d);
    let dir = DataDir::new(tmp.path());
    let e =
        data::load_with(&DatasetSpec::FashionMnist, &dir, &Limits::NONE, &STRICT).unwrap_err().to_string();
    assert!(e.contains("fashion-mnist/train-images-idx3-ubyte") && e.contains("c59f468a"), "{e}");
    let s = data::load_with(&DatasetSpec::FashionMnist, &dir, &Limits::NONE, &LAX).unwrap();
    assert_eq!(s.name, "fashion-mnist");
    assert_eq!(s.train.len(), 1000);
}

// ---- Adult ------------------------------------------------------------------------------------

/// Complete rows of an Adult file, counted independently of the loader.
fn complete_rows(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('|') && !l.contains('?')).count()
}

#[test]
fn adult_mini_encodes_with_train_statistics() {
    let s = data::load_with(&DatasetSpec::AdultMini, &DataDir::from_env(), &Limits::NONE, &STRICT).unwrap();
    let train_txt = std::fs::read_to_string(fixture("adult-mini/adult.data")).unwrap();
    let test_txt = std::fs::read_to_string(fixture("adult-mini/adult.test")).unwrap();
    assert!(test_txt.starts_with("|1x3 Cross validator"));
    assert_eq!(s.train.len() as usize, complete_rows(&train_txt));
    assert_eq!(s.test.len() as usize, complete_rows(&test_txt));
    let d = s.train.x.size()[1] as usize;
    assert_eq!(s.feature_names.len(), d);
    assert_eq!(s.feature_std.len(), d);
    assert_eq!(s.train.num_classes, 2);
    // Labels: >50K is 1; test labels end in '.'.
    let positives = test_txt.lines().filter(|l| !l.contains('?') && l.trim_end().ends_with(">50K.")).count();
    assert_eq!(s.test.class_counts()[1] as usize, positives);
    // Numeric column `age`: standardised on train, its raw std recorded.
    let age_col = s.feature_names.iter().position(|n| n == "age").unwrap();
    let ages: Vec<f64> = train_txt
        .lines()
        .filter(|l| !l.contains('?') && !l.trim().is_empty())
        .map(|l| l.split(',').next().unwrap().trim().parse().unwrap())
        .collect();
    let mean = ages.iter().sum::<f64>() / ages.len() as f64;
    let std = (ages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / ages.len() as f64).sqrt();
    assert!((s.feature_std[age_col] - std).abs() < 1e-9);
    let x = f64s(&s.train.x.select(1, age_col as i64));
    assert!((x[0] - (ages[0] - mean) / std).abs() < 1e-5);
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let v = x.iter().map(|z| (z - m).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "train mean {m} var {v}");
    // One-hot columns: 0/1 and exactly one per categorical column per row on train.
    let sex: Vec<usize> =
        s.feature_names.iter().enumerate().filter(|(_, n)| n.starts_with("sex=")).map(|(i, _)| i).collect();
    assert_eq!(sex.len(), 2);
    let xs = f64s(
        &s.train.x.index_select(1, &Tensor::from_slice(&sex.iter().map(|&i| i as i64).collect::<Vec<_>>())),
    );
    assert!(xs.chunks(2).all(|r| r.iter().sum::<f64>() == 1.0 && r.iter().all(|&v| v == 0.0 || v == 1.0)));
}

fn adult_dir_with(train: &str, test: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("adult.data"), train).unwrap();
    std::fs::write(tmp.path().join("adult.test"), test).unwrap();
    tmp
}

#[test]
fn adult_rejects_wrong_checksum_bad_rows_and_truncation() {
    let train = std::fs::read_to_string(fixture("adult-mini/adult.data")).unwrap();
    let test = std::fs::read_to_string(fixture("adult-mini/adult.test")).unwrap();
    // Unchanged copies verify against the fixture pins; a changed byte does not.
    let ok = adult_dir_with(&train, &test);
    tabular::load_adult("adult-mini", ok.path(), true).unwrap();
    let changed = adult_dir_with(&train.replacen("State-gov", "State-gow", 1), &test);
    let e = tabular::load_adult("adult-mini", changed.path(), true).unwrap_err().to_string();
    assert!(e.contains("adult.data") && e.contains("sha256"), "{e}");
    // Truncated mid-row: the last line has too few fields.
    let cut = adult_dir_with(&train[..train.len() / 2], &test);
    let e = tabular::load_adult("adult-mini", cut.path(), false).unwrap_err().to_string();
    assert!(e.contains("adult.data, line ") && e.contains("expected 15"), "{e}");
    // A non-numeric age in the test file names file and line.
    let bad = adult_dir_with(&train, &test.replacen("\n25,", "\ntwenty-five,", 1));
    let e = tabular::load_adult("adult-mini", bad.path(), false).unwrap_err().to_string();
    assert!(e.contains("adult.test, line 2") && e.contains("`age`"), "{e}");
    // Gzipped copies load too.
    let gzd = tempfile::tempdir().unwrap();
    std::fs::write(gzd.path().join("adult.data.gz"), gz(train.as_bytes())).unwrap();
    std::fs::write(gzd.path().join("adult.test.gz"), gz(test.as_bytes())).unwrap();
    assert_eq!(
        tabular::load_adult("adult-mini", gzd.path(), true).unwrap().train.len() as usize,
        complete_rows(&train)
    );
}

// ---- CSV --------------------------------------------------------------------------------------

/// A file in bank-full.csv's format: `;`-separated, quoted, label `y` yes/no.
fn bank_like(n: usize) -> String {
    let mut s = String::from("\"age\";\"job\";\"marital\";\"balance\";\"y\"\n");
    let jobs = ["admin.", "blue-collar", "technician", "unknown"];
    for i in 0..n {
        let y = if i % 3 == 0 { "yes" } else { "no" };
        s.push_str(&format!(
            "{};\"{}\";\"{}\";{};\"{}\"\n",
            20 + i % 50,
            jobs[i % 4],
            if i % 2 == 0 { "married" } else { "single" },
            (i as i64 * 37) % 1000 - 200,
            y
        ));
    }
    s
}

fn csv_spec(path: &Path, seed: u64) -> DatasetSpec {
    DatasetSpec::Csv {
        path: path.to_path_buf(),
        label_column: "y".into(),
        separator: ';',
        positive_label: Some("yes".into()),
        test_fraction: 0.25,
        seed,
    }
}

#[test]
fn csv_bank_like_splits_by_seed_and_encodes_on_train() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bank-full.csv");
    std::fs::write(&p, bank_like(200)).unwrap();
    let dir = DataDir::from_env();
    let s = data::load_with(&csv_spec(&p, 7), &dir, &Limits::NONE, &STRICT).unwrap();
    assert_eq!(s.name, "csv:bank-full.csv");
    assert_eq!((s.train.len(), s.test.len()), (150, 50));
    assert_eq!(
        s.feature_names,
        vec![
            "age",
            "job=admin.",
            "job=blue-collar",
            "job=technician",
            "job=unknown",
            "marital=married",
            "marital=single",
            "balance"
        ]
    );
    assert_eq!(s.train.class_counts().iter().sum::<i64>() + s.test.class_counts().iter().sum::<i64>(), 200);
    assert_eq!(s.train.class_counts()[1] + s.test.class_counts()[1], 67, "67 of 200 rows are `yes`");
    // Numeric columns standardised on train: mean 0, population variance 1.
    for col in [0i64, 7] {
        let x = f64s(&s.train.x.select(1, col));
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let v = x.iter().map(|z| (z - m).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4);
    }
    // Same seed, same split; another seed, another split.
    let again = data::load_with(&csv_spec(&p, 7), &dir, &Limits::NONE, &STRICT).unwrap();
    assert!(f64s(&again.test.x) == f64s(&s.test.x));
    let other = data::load_with(&csv_spec(&p, 8), &dir, &Limits::NONE, &STRICT).unwrap();
    assert!(f64s(&other.test.x) != f64s(&s.test.x));
    // Without a positive label, classes are the sorted label values: no=0, yes=1.
    let spec = DatasetSpec::Csv {
        path: p.clone(),
        label_column: "y".into(),
        separator: ';',
        positive_label: None,
        test_fraction: 0.25,
        seed: 7,
    };
    let u = data::load_with(&spec, &dir, &Limits::NONE, &STRICT).unwrap();
    assert_eq!(i64s(&u.train.y), i64s(&s.train.y));
}

#[test]
fn csv_errors_name_file_line_and_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bank.csv");
    let dir = DataDir::from_env();
    std::fs::write(&p, bank_like(20)).unwrap();
    let load =
        |spec: &DatasetSpec| data::load_with(spec, &dir, &Limits::NONE, &STRICT).unwrap_err().to_string();
    // Wrong separator: the header is one column, so the label column is not found.
    let e = load(&DatasetSpec::Csv {
        path: p.clone(),
        label_column: "y".into(),
        separator: ',',
        positive_label: None,
        test_fraction: 0.2,
        seed: 0,
    });
    assert!(e.contains("bank.csv") && e.contains("label column `y`") && e.contains("--separator"), "{e}");
    let e = load(&DatasetSpec::Csv {
        path: p.clone(),
        label_column: "y".into(),
        separator: ';',
        positive_label: None,
        test_fraction: 1.5,
        seed: 0,
    });
    assert!(e.contains("test fraction 1.5"), "{e}");
    let e = load(&DatasetSpec::Csv {
        path: p.clone(),
        label_column: "y".into(),
        separator: '§',
        positive_label: None,
        test_fraction: 0.2,
        seed: 0,
    });
    assert!(e.contains("separator"), "{e}");
    // A ragged row.
    let mut text = bank_like(5);
    text.push_str("33;\"admin.\";\"single\"\n");
    std::fs::write(&p, text).unwrap();
    let e = load(&csv_spec(&p, 0));
    assert!(e.contains("bank.csv, line 7"), "{e}");
    let e = load(&csv_spec(&tmp.path().join("nope.csv"), 0));
    assert!(e.contains("nope.csv"), "{e}");
}

// ---- CIFAR-10 binary ----------------------------------------------------------------------------

/// One record: label, then R, G, B planes filled with `r`, `g`, `b` except pixel (0,0) of R = 7.
fn record(label: u8, r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut v = vec![label];
    v.extend(std::iter::repeat_n(r, 1024));
    v.extend(std::iter::repeat_n(g, 1024));
    v.extend(std::iter::repeat_n(b, 1024));
    v[1] = 7;
    v
}

fn cifar_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (i, f) in cifar::TRAIN_FILES.iter().enumerate() {
        let mut b = record(i as u8, 255, 0, 128);
        b.extend(record(9 - i as u8, 0, 51, 255));
        std::fs::write(tmp.path().join(f), b).unwrap();
    }
    let t: Vec<u8> = (0..3).flat_map(|k| record(k, 10, 20, 30)).collect();
    std::fs::write(tmp.path().join(cifar::TEST_FILE), gz(&t)).unwrap();
    tmp
}

#[test]
fn cifar10_binary_records_become_chw_images() {
    let tmp = cifar_dir();
    let spec: DatasetSpec = format!("cifar10:{}", tmp.path().display()).parse().unwrap();
    let s = data::load(&spec, &DataDir::from_env(), &Limits::NONE).unwrap();
    assert_eq!(s.train.x.size(), vec![10, 3, 32, 32]);
    assert_eq!(s.test.x.size(), vec![3, 3, 32, 32]);
    assert_eq!(i64s(&s.train.y), vec![0, 9, 1, 8, 2, 7, 3, 6, 4, 5]);
    assert_eq!(i64s(&s.test.y), vec![0, 1, 2]);
    let px = |d: &data::Dataset, n, c, h, w| d.x.double_value(&[n, c, h, w]);
    assert!((px(&s.train, 0, 0, 0, 0) - 7.0 / 255.0).abs() < 1e-6);
    assert_eq!(px(&s.train, 0, 0, 31, 31), 1.0);
    assert_eq!(px(&s.train, 0, 1, 5, 9), 0.0);
    assert!((px(&s.train, 0, 2, 31, 0) - 128.0 / 255.0).abs() < 1e-6);
    assert!((px(&s.train, 1, 1, 0, 0) - 0.2).abs() < 1e-6);
    assert!((px(&s.test, 2, 2, 16, 16) - 30.0 / 255.0).abs() < 1e-6);
}

#[test]
fn cifar10_rejects_truncated_bad_label_empty_and_missing_files() {
    let check = |f: &str, bytes: Vec<u8>, want: &str| {
        let tmp = cifar_dir();
        let p = tmp.path().join(f);
        std::fs::write(&p, bytes).unwrap();
        let e = cifar::load_cifar10(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains(want), "want `{want}`: {e}");
    };
    let mut truncated = record(1, 1, 1, 1);
    truncated.extend(&record(2, 2, 2, 2)[..3000]);
    check("data_batch_3.bin", truncated, "not a whole number of 3073-byte records");
    let mut bad = record(1, 1, 1, 1);
    bad.extend(record(10, 2, 2, 2));
    check("test_batch.bin", bad, "record 1 (byte offset 3073): label byte 10");
    check("data_batch_1.bin", vec![], "empty");
    let tmp = cifar_dir();
    std::fs::remove_file(tmp.path().join("data_batch_5.bin")).unwrap();
    let e = cifar::load_cifar10(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("data_batch_5.bin") && e.contains("not found"), "{e}");
    let e = cifar::load_cifar10(&tmp.path().join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("nowhere"), "{e}");
}

// ---- synthetic ---------------------------------------------------------------------------------

#[test]
fn synthetic_mixtures_are_seeded_balanced_and_follow_conventions() {
    let dir = DataDir::from_env();
    let img = data::load(&DatasetSpec::synthetic_images(), &dir, &Limits::NONE).unwrap();
    assert_eq!(img.train.x.size(), vec![1000, 1, 28, 28]);
    assert_eq!(img.train.class_counts(), vec![100; 10]);
    let px = f64s(&img.test.x);
    assert!(px.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let again = data::load(&DatasetSpec::synthetic_images(), &dir, &Limits::NONE).unwrap();
    assert!(f64s(&again.test.x) == px);
    let spec = |seed, separation| DatasetSpec::Synthetic {
        shape: vec![6],
        classes: 3,
        train: 300,
        test: 60,
        separation,
        seed,
    };
    let tab = data::load(&spec(1, 4.0), &dir, &Limits::NONE).unwrap();
    assert_eq!(tab.train.x.size(), vec![300, 6]);
    assert_eq!(tab.feature_names, (0..6).map(|j| format!("x{j}")).collect::<Vec<_>>());
    assert_eq!(tab.feature_std.len(), 6);
    let x0 = f64s(&tab.train.x.select(1, 0));
    assert!((x0.iter().sum::<f64>() / 300.0).abs() < 1e-5);
    assert!(f64s(&data::load(&spec(2, 4.0), &dir, &Limits::NONE).unwrap().train.x) != f64s(&tab.train.x));
    // Separation 0: class means coincide, so class-conditional means of x differ only by noise;
    // with separation 20 they are far apart.
    let gap = |s: &data::Split| {
        let x = f64s(&s.train.x.select(1, 0));
        let y = i64s(&s.train.y);
        let m = |k| {
            let v: Vec<f64> = x.iter().zip(&y).filter(|(_, &l)| l == k).map(|(a, _)| *a).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        (m(0) - m(1)).abs().max((m(1) - m(2)).abs())
    };
    assert!(gap(&data::load(&spec(1, 0.0), &dir, &Limits::NONE).unwrap()) < 0.5);
    assert!(gap(&data::load(&spec(1, 20.0), &dir, &Limits::NONE).unwrap()) > 0.5);
    for bad in [
        DatasetSpec::Synthetic {
            shape: vec![2, 3],
            classes: 2,
            train: 10,
            test: 10,
            separation: 1.0,
            seed: 0,
        },
        DatasetSpec::Synthetic { shape: vec![4], classes: 1, train: 10, test: 10, separation: 1.0, seed: 0 },
        DatasetSpec::Synthetic { shape: vec![4], classes: 2, train: 0, test: 10, separation: 1.0, seed: 0 },
        DatasetSpec::Synthetic {
            shape: vec![4],
            classes: 2,
            train: 10,
            test: 10,
            separation: f64::NAN,
            seed: 0,
        },
    ] {
        assert!(data::load(&bad, &dir, &Limits::NONE)
            .unwrap_err()
            .to_string()
            .starts_with("synthetic dataset:"));
    }
}

// ---- fetch / verify ----------------------------------------------------------------------------

#[test]
fn verify_fixtures_and_reject_unknown_or_absent_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    assert_eq!(data::verify("fashion-mnist-mini", &dir).unwrap().len(), 4);
    assert_eq!(data::verify("adult-mini", &dir).unwrap().len(), 2);
    let e = data::verify("mnist", &dir).unwrap_err().to_string();
    assert!(e.contains("crowdout data fetch mnist") && e.contains("missing"), "{e}");
    let e = data::fetch("cifar10", &dir).unwrap_err().to_string();
    assert!(e.contains("not fetchable"), "{e}");
    let e = data::load_with(&DatasetSpec::Adult, &dir, &Limits::NONE, &STRICT).unwrap_err().to_string();
    assert!(e.contains("crowdout data fetch adult"), "{e}");
}

#[test]
fn fetch_script_uses_the_same_pins_as_the_crate() {
    // fetch.sh reads datasets/checksums.sha256, the file compiled into the crate.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("datasets/fetch.sh")).unwrap();
    assert!(script.contains("checksums.sha256"));
    let on_disk = std::fs::read_to_string(root.join("datasets/checksums.sha256")).unwrap();
    assert_eq!(on_disk, data::checksums::PINS);
}

// ---- Mail text (SpamAssassin layout) -------------------------------------------------------------

fn mini(o: &str) -> data::Split {
    let spec: DatasetSpec = format!("spamassassin-mini:{o}").parse().unwrap();
    data::load_with(&spec, &DataDir::from_env(), &Limits::NONE, &STRICT).unwrap()
}

#[test]
fn spamassassin_mini_tokenises_with_a_train_only_vocabulary() {
    let s = mini("max_len=12,seed=0");
    // 48 mails: 24 ham, 24 spam; 20 % (10) held out.
    assert_eq!((s.train.len(), s.test.len()), (38, 10));
    assert_eq!(s.train.x.size(), vec![38, 12]);
    assert_eq!(s.train.x.kind(), tch::Kind::Int64);
    let counts: Vec<i64> =
        s.train.class_counts().iter().zip(s.test.class_counts()).map(|(a, b)| a + b).collect();
    assert_eq!(counts, vec![24, 24]);
    let vocab = s.vocab.as_ref().expect("text splits carry their vocabulary");
    let ids = i64s(&s.train.x);
    // Every row starts with [BOS]; clean ids never reach the unseen range.
    for row in ids.chunks(12) {
        assert_eq!(row[0], data::tokenizer::BOS_ID);
    }
    assert!(ids.iter().all(|&i| (0..vocab.len()).contains(&i)));
    assert!(i64s(&s.test.x).iter().all(|&i| (0..vocab.len()).contains(&i)));
    // Every mail of the fixture is read (CRLF, folded subject, Latin-1 byte, headers only).
    let mails = data::text::read_mails(&fixture("spamassassin-mini")).unwrap();
    assert_eq!(mails.len(), 48);
    // The same seed gives the same split; another seed another one (labels differ in order).
    let again = mini("max_len=12,seed=0");
    assert!(again.train.x.equal(&s.train.x) && again.test.y.equal(&s.test.y));
    let other = mini("max_len=12,seed=1");
    assert!(!other.train.x.equal(&s.train.x));
    // Five groups on request.
    let g = mini("labels=groups");
    assert_eq!(g.train.num_classes, 5);
    let total: Vec<i64> =
        g.train.class_counts().iter().zip(g.test.class_counts()).map(|(a, b)| a + b).collect();
    assert_eq!(total, vec![12, 8, 4, 12, 12]);
}

#[test]
fn vocabulary_sees_only_training_mails() {
    // A corpus whose only occurrences of `zebra` are in one mail: whichever part it falls in,
    // `zebra` is in the vocabulary exactly when it is in a training mail (it occurs twice there).
    let tmp = tempfile::tempdir().unwrap();
    for (g, n) in [("easy-ham-1", 6), ("spam-1", 4)] {
        std::fs::create_dir_all(tmp.path().join(g)).unwrap();
        for k in 0..n {
            let body = if g == "spam-1" && k == 0 { "zebra zebra" } else { "common words here common words" };
            std::fs::write(tmp.path().join(g).join(format!("{k}.txt")), format!("Subject: s\n\n{body}\n"))
                .unwrap();
        }
    }
    let spec = DatasetSpec::Spamassassin(data::text::TextOptions {
        dir: Some(tmp.path().to_path_buf()),
        max_len: 8,
        ..Default::default()
    });
    let mut seen_in_train = 0;
    for seed in 0..6 {
        let spec = match &spec {
            DatasetSpec::Spamassassin(o) => {
                DatasetSpec::Spamassassin(data::text::TextOptions { seed, ..o.clone() })
            }
            _ => unreachable!(),
        };
        let s = data::load_with(&spec, &DataDir::from_env(), &Limits::NONE, &LAX).unwrap();
        let v = s.vocab.unwrap();
        let zebra_rows_in_test =
            i64s(&s.test.x).chunks(8).filter(|r| r[1] != data::tokenizer::PAD_ID && r[2] == r[3]).count();
        // `s`, `common`, `words`, `here` are always fitted (they appear in ≥ 2 training mails).
        assert!(v.id("common").is_some());
        if v.id("zebra").is_some() {
            seen_in_train += 1;
        } else {
            // Then the zebra mail is a test mail, encoded [BOS] s [UNK] [UNK].
            assert!(zebra_rows_in_test >= 1, "seed {seed}");
        }
    }
    assert!(seen_in_train > 0 && seen_in_train < 6, "the mail moved between parts over 6 seeds");
}
