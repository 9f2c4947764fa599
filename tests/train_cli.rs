//! End-to-end runs of `crowdout train` on the committed fixture (small, seconds).

use std::process::Command;

fn crowdout() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.env_remove("LD_LIBRARY_PATH");
    c
}

fn record(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run.json");
    let o = crowdout()
        .args(["train", "--dataset", "fashion-mnist-mini", "--quiet", "--threads", "1", "--out"])
        .arg(&out)
        .args(args)
        .output()
        .expect("run crowdout");
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(&out).expect("record written")).expect("record is JSON")
}

#[test]
fn nonprivate_softmax_learns_and_records_everything() {
    let r =
        record(&["--model", "softmax", "--epochs", "3", "--batch-size", "50", "--lr", "0.5", "--seed", "3"]);
    let acc = r["clean_accuracy"]["rate"].as_f64().unwrap();
    // Ten balanced classes: chance is 10%; softmax regression on 1000 images does far better.
    assert!(acc > 0.5, "accuracy {acc}");
    assert_eq!(r["config"]["seed"], 3);
    assert_eq!(r["data"]["n_train"], 1000);
    assert!(r["provenance"]["git_commit"].as_str().unwrap().len() >= 7);
    assert_eq!(r["provenance"]["libtorch_version"], "2.13.0");
    assert!(r["dp"].is_null());
    assert!(r["wall_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn dp_run_with_target_epsilon_and_collective() {
    let r = record(&[
        "--model",
        "softmax",
        "--epochs",
        "2",
        "--batch-size",
        "100",
        "--lr",
        "0.5",
        "--seed",
        "4",
        "--dp",
        "--target-epsilon",
        "4",
        "--delta",
        "1e-4",
        "--max-grad-norm",
        "1",
        "--collective",
        "alpha=0.1,target=0,trigger=patch:size=3:pos=br:value=1",
    ]);
    let dp = &r["dp"];
    let eps_rdp = dp["epsilon_rdp"].as_f64().unwrap();
    let eps_pld = dp["epsilon_pld"].as_f64().unwrap();
    // Calibrated to ε = 4 by RDP within Opacus's tolerance 0.01; PLD is tighter than RDP.
    assert!((3.99 - 1e-9..=4.0).contains(&eps_rdp), "eps_rdp {eps_rdp}");
    assert!(eps_pld <= eps_rdp, "PLD {eps_pld} > RDP {eps_rdp}");
    assert_eq!(dp["calibrated_for_epsilon"], 4.0);
    assert_eq!(dp["noise_reproducible"], true);
    assert_eq!(dp["steps"], 20); // T = round(epochs / q) = 2 / 0.1
    assert_eq!(r["collectives"][0]["members"], 100); // ⌊0.1 · 1000⌋
    let s = r["success"]["per_collective"][0]["non_target"]["rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&s));
    // Where the time went: every phase measured, the in-run ones within the run's wall time, and
    // the loading (outside it) recorded because this command loaded the data.
    let p = &r["phases"];
    let inside: Vec<f64> = ["plant", "calibrate", "build", "train", "account", "evaluate"]
        .iter()
        .map(|k| p[k].as_f64().unwrap_or_else(|| panic!("phases.{k} missing: {p}")))
        .collect();
    assert!(inside.iter().all(|t| *t >= 0.0), "{p}");
    let wall = r["wall_seconds"].as_f64().unwrap();
    assert!(inside.iter().sum::<f64>() <= wall, "{p} vs wall {wall}");
    assert!(p["train"].as_f64().unwrap() > 0.0 && p["load"].as_f64().unwrap() > 0.0, "{p}");
}

/// `--device cuda` and `--device auto`: on a GPU machine both train on the GPU; without one, cuda
/// is a clear error and auto falls back to the CPU and says so. Either way something is checked.
#[test]
fn device_choice_trains_on_the_gpu_or_fails_clearly() {
    let run = |device: &str| {
        crowdout()
            .args([
                "train",
                "--dataset",
                "fashion-mnist-mini",
                "--model",
                "softmax",
                "--epochs",
                "0.1",
                "--quiet",
                "--train-limit",
                "100",
                "--device",
                device,
            ])
            .output()
            .unwrap()
    };
    if tch::Cuda::is_available() {
        for device in ["cuda", "auto"] {
            let o = run(device);
            assert!(o.status.success(), "--device {device}: {}", String::from_utf8_lossy(&o.stderr));
            assert!(!String::from_utf8_lossy(&o.stderr).contains("running on the CPU"));
        }
        return;
    }
    let o = run("cuda");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--device cuda") && err.contains("no CUDA"), "{err}");

    let o = run("auto");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("running on the CPU"));
}

#[test]
fn same_seed_same_record_numbers() {
    let args = [
        "--model",
        "cnn",
        "--epochs",
        "0.5",
        "--batch-size",
        "50",
        "--lr",
        "0.1",
        "--seed",
        "9",
        "--dp",
        "--noise-multiplier",
        "1.0",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
    ];
    let a = record(&args);
    let b = record(&args);
    assert_eq!(a["clean_accuracy"], b["clean_accuracy"]);
    assert_eq!(a["final_train_loss"], b["final_train_loss"]);
}

#[test]
fn csv_dataset_string_with_options_trains_like_bank_marketing() {
    // A bank-full.csv look-alike: ';'-separated, quoted, label column `y` with yes/no.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank-like.csv");
    let mut text = String::from("\"age\";\"job\";\"balance\";\"y\"\n");
    for i in 0..200 {
        let yes = i % 4 == 0;
        let job = ["admin.", "technician", "services"][i % 3];
        text += &format!(
            "{};\"{}\";{};\"{}\"\n",
            20 + i % 50,
            job,
            if yes { 3000 + i } else { i },
            if yes { "yes" } else { "no" }
        );
    }
    std::fs::write(&path, text).unwrap();
    let spec = format!("csv:{},label=y,sep=;,positive=yes", path.display());
    let out = dir.path().join("run.json");
    let o = crowdout()
        .args([
            "train",
            "--dataset",
            &spec,
            "--model",
            "softmax",
            "--epochs",
            "5",
            "--batch-size",
            "20",
            "--lr",
            "0.5",
            "--seed",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .args(["--collective", "alpha=0.1,target=1,trigger=offset:feature=0:shift_std=4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["data"]["num_classes"], 2);
    assert_eq!(r["data"]["n_train"].as_i64().unwrap() + r["data"]["n_test"].as_i64().unwrap(), 200);
    assert_eq!(r["collectives"][0]["members"], 16); // ⌊0.1 · 160⌋ train records
}
