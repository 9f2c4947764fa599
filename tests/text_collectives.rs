//! Token-planting collectives on mail text (issue 15): planted rows on the committed
//! `spamassassin-mini` fixture, two collectives with different tokens and targets, feature-label
//! and feature-only, and one tiny end-to-end run of the transformer through `crowdout train`.

use std::process::Command;

use crowdout::collective::{self, CollectiveSpec, Strategy, Trigger};
use crowdout::data::{self, tokenizer::PAD_ID, DataDir, DatasetSpec, Limits};

fn rows(t: &tch::Tensor) -> Vec<Vec<i64>> {
    let w = t.size()[1] as usize;
    Vec::<i64>::try_from(&t.contiguous().view(-1)).unwrap().chunks(w).map(|r| r.to_vec()).collect()
}

#[test]
fn two_token_collectives_plant_their_own_unseen_ids() {
    let spec: DatasetSpec = "spamassassin-mini:max_len=16".parse().unwrap();
    let split = data::load(&spec, &DataDir::from_env(), &Limits::NONE).unwrap();
    let vocab = split.vocab.as_ref().unwrap();
    let (a, b) = (vocab.unseen_ids().start, vocab.unseen_ids().start + 1);
    let specs: Vec<CollectiveSpec> = [
        format!("alpha=0.2,target=1,trigger=token:every=4:token={a}"),
        format!("alpha=0.1,target=0,trigger=token:position=1:token={b},strategy=feature-only"),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    collective::check_tokens(&specs, vocab).unwrap();
    let planted = collective::plant(&split.train, &specs, Some(5)).unwrap();
    let (before, after) = (rows(&split.train.x), rows(&planted.train.x));
    let (y0, y1) =
        (Vec::<i64>::try_from(&split.train.y).unwrap(), Vec::<i64>::try_from(&planted.train.y).unwrap());
    let n = before.len();
    assert_eq!(planted.collectives[0].members, (0.2 * n as f64).floor() as u64);
    assert_eq!(planted.collectives[1].members, (0.1 * n as f64).floor() as u64);
    let m0 = &planted.collectives[0].member_indices;
    let m1 = &planted.collectives[1].member_indices;
    for i in 0..n {
        let row = &after[i];
        if m0.contains(&(i as i64)) {
            // Feature-label: ham members (members_from = not-target) become spam, token every 4th.
            assert_eq!((y0[i], y1[i]), (0, 1));
            assert_eq!(row[3], a, "row {i}: {row:?}");
            assert!(!row.contains(&b));
            let content: Vec<i64> = row.iter().copied().filter(|&v| v != a && v != PAD_ID).collect();
            let orig: Vec<i64> = before[i].iter().copied().filter(|&v| v != PAD_ID).collect();
            assert_eq!(content, orig[..content.len()], "row {i}: the content is kept in order");
        } else if m1.contains(&(i as i64)) {
            // Feature-only: members drawn from the target class keep their label.
            assert_eq!((y0[i], y1[i]), (0, 0));
            assert_eq!(row[1], b);
            assert!(!row.contains(&a));
        } else {
            assert_eq!(row, &before[i], "non-member {i} is untouched");
            assert_eq!(y0[i], y1[i]);
        }
    }
    assert_eq!(specs[0].strategy, Strategy::FeatureLabel);
    assert_eq!(specs[1].trigger, Trigger::Token { position: 1, token: b });
    // No clean row (train or test) contains either token.
    for r in rows(&split.train.x).iter().chain(rows(&split.test.x).iter()) {
        assert!(!r.contains(&a) && !r.contains(&b));
    }
}

#[test]
fn transformer_trains_on_mail_and_reports_each_collective() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run.json");
    let status = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args([
            "train",
            "--dataset",
            "spamassassin-mini:max_len=16",
            "--model",
            "transformer",
            "--epochs",
            "4",
            "--batch-size",
            "8",
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
            "--seed",
            "3",
            "--threads",
            "1",
            "--quiet",
            "--collective",
            "alpha=0.2,target=1,trigger=token:every=4:token=70",
            "--collective",
            "alpha=0.1,target=0,trigger=token:position=1:token=71,strategy=feature-only",
            "--dp",
            "--noise-multiplier",
            "0.5",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{stderr}");
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(rec["data"]["example_shape"], serde_json::json!([16]));
    assert_eq!(rec["collectives"].as_array().unwrap().len(), 2);
    assert_eq!(rec["success"]["per_collective"].as_array().unwrap().len(), 2);
    assert!(rec["dp"]["epsilon_rdp"].as_f64().unwrap().is_finite());
    // The vocabulary is saved beside the record: it is the one the loader fits, so the run's test
    // set (and triggered test points) can be rebuilt and re-scored.
    let vocab: data::tokenizer::Vocab =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("run.vocab.json")).unwrap()).unwrap();
    assert_eq!(vocab.max_len(), 16);
    let spec: DatasetSpec = "spamassassin-mini:max_len=16".parse().unwrap();
    let split = data::load(&spec, &DataDir::from_env(), &Limits::NONE).unwrap();
    assert_eq!(Some(&vocab), split.vocab.as_ref());
    assert!(vocab.unseen_ids().contains(&70) && vocab.unseen_ids().contains(&71));
}

/// A text sweep (both token models, non-private and DP) runs end to end on the fixture, and a
/// token trigger outside the table is refused by name in every cell, the α = 0 baseline included
/// (it plants nothing in training but measures with the trigger).
#[test]
fn text_sweep_runs_and_refuses_a_token_outside_the_table_in_every_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = |token: i64| {
        format!(
            r#"name = "text-mini"
[grid]
dataset = ["spamassassin-mini:max_len=16"]
model = ["transformer", "embedding"]
collectives = ["trigger=token:every=4:token={token},target=0,strategy=feature-label"]
alpha = [0.0, 0.2]
privacy = ["none", "eps=8"]
clip = [1.0]
seed = [0]
[train]
epochs = 1
batch_size = 8
lr = 0.1
optimizer = "sgd"
momentum = 0.9
"#
        )
    };
    let split =
        data::load(&"spamassassin-mini:max_len=16".parse().unwrap(), &DataDir::from_env(), &Limits::NONE)
            .unwrap();
    let unseen = split.vocab.as_ref().unwrap().unseen_ids();
    let run = |name: &str, token: i64| {
        let dir = tmp.path().join(name);
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, spec(token)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_crowdout"))
            .args(["sweep", path.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--jobs", "1"])
            .args(["--torch-threads", "1", "--no-progress"])
            .output()
            .unwrap();
        let mut rdr = csv::Reader::from_path(dir.join("results.csv")).unwrap();
        let h = rdr.headers().unwrap().clone();
        let col = |r: &csv::StringRecord, c: &str| r[h.iter().position(|x| x == c).unwrap()].to_string();
        let rows: Vec<(String, String, String)> = rdr
            .records()
            .map(|r| r.unwrap())
            .map(|r| (col(&r, "alpha"), col(&r, "success"), col(&r, "error")))
            .collect();
        (out, rows)
    };
    let (out, rows) = run("ok", unseen.start);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rows.len(), 8);
    for (alpha, success, error) in &rows {
        assert!(error.is_empty(), "alpha {alpha}: {error}");
        let s: f64 = success.parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
    }
    let (_, rows) = run("bad", unseen.end + 100);
    assert_eq!(rows.len(), 8);
    for (alpha, _, error) in &rows {
        assert!(
            error.contains("past the model's embedding table")
                && error.contains(&format!("{}..{}", unseen.start, unseen.end)),
            "alpha {alpha}: {error}"
        );
    }
}
