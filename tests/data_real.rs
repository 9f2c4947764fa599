//! Tests on the full fetched datasets. They skip, with a message, when the data directory
//! ($CROWDOUT_DATA or ./datasets/cache) lacks a dataset: CI has only the fixtures.
//! Fetch with `crowdout data fetch all` (or `make data`) to run them.

use crowdout::data::{self, DataDir, DatasetSpec, Fetchable, Limits};

fn have(f: Fetchable) -> Option<DataDir> {
    let dir = DataDir::from_env();
    if data::verify(f.key(), &dir).is_ok() {
        Some(dir)
    } else {
        let reason = format!(
            "data set {} not fetched in {} (run `crowdout data fetch {}`)",
            f.key(),
            dir.0.display(),
            f.key()
        );
        crowdout::hardware::skip("data", &reason, module_path!());
        None
    }
}

#[test]
fn real_fashion_mnist_has_60k_10k_balanced() {
    let Some(dir) = have(Fetchable::FashionMnist) else { return };
    let s = data::load(&DatasetSpec::FashionMnist, &dir, &Limits::NONE).unwrap();
    assert_eq!(s.train.x.size(), vec![60000, 1, 28, 28]);
    assert_eq!(s.test.x.size(), vec![10000, 1, 28, 28]);
    assert_eq!(s.train.class_counts(), vec![6000; 10]);
    assert_eq!(s.test.class_counts(), vec![1000; 10]);
}

#[test]
fn real_mnist_matches_canonical_class_counts() {
    let Some(dir) = have(Fetchable::Mnist) else { return };
    let s = data::load(&DatasetSpec::Mnist, &dir, &Limits::NONE).unwrap();
    // LeCun & Cortes' published per-digit counts.
    assert_eq!(s.train.class_counts(), vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(s.test.class_counts(), vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let lim = data::load(&DatasetSpec::Mnist, &dir, &Limits { train: Some(100), test: Some(10) }).unwrap();
    assert_eq!((lim.train.len(), lim.test.len()), (100, 10));
}

#[test]
fn real_adult_complete_rows_and_104_features() {
    let Some(dir) = have(Fetchable::Adult) else { return };
    let s = data::load(&DatasetSpec::Adult, &dir, &Limits::NONE).unwrap();
    // 45,222 complete rows of 48,842 (UCI adult.names): 30,162 train + 15,060 test.
    assert_eq!((s.train.len(), s.test.len()), (30162, 15060));
    assert_eq!(s.train.x.size()[1], 104);
    assert_eq!(s.feature_names.len(), 104);
    assert_eq!(s.train.class_counts(), vec![22654, 7508]);
    assert_eq!(s.test.class_counts(), vec![11360, 3700]);
}

#[test]
fn real_spamassassin_has_6046_mails_4150_ham_1896_spam() {
    let Some(dir) = have(Fetchable::Spamassassin) else { return };
    let s = data::load(&"spamassassin:max_len=64".parse().unwrap(), &dir, &Limits::NONE).unwrap();
    assert_eq!(s.train.len() + s.test.len(), 6046);
    assert_eq!(s.test.len(), 1209);
    let ham = s.train.class_counts()[0] + s.test.class_counts()[0];
    assert_eq!(ham, 4150);
    assert_eq!(s.train.x.size(), vec![4837, 64]);
    assert_eq!(s.vocab.unwrap().len(), 10_000);
}
