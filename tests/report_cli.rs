//! `crowdout report` on fake-runner results writes a summary with every section and real PNG and
//! SVG plots.

use std::process::Command;

const SPEC: &str = r#"
name = "rep"
[grid]
dataset = ["d"]
model = ["m"]
collectives = [{ name = "patch", spec = "trigger=patch:size=3,target=0" }]
alpha = [0.0, 0.005, 0.02, 0.1, 0.3]
privacy = ["none", "sigma=0", "eps=8", "eps=1"]
clip = [1.0, 5.0]
seed = [0, 1]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

/// Runs `spec` with the fake cell runner into `<dir>/o` and returns that folder.
fn fake_sweep(dir: &std::path::Path, spec: &str) -> std::path::PathBuf {
    let path = dir.join("s.toml");
    std::fs::write(&path, spec).unwrap();
    let out = dir.join("o");
    let st = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args(["sweep", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-progress"])
        .env("CROWDOUT_FAKE_RUNNER", "sleep-ms:0")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[test]
fn report_writes_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = fake_sweep(d, SPEC);
    let rep = d.join("rep");
    let o = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args(["report", out.join("results.csv").to_str().unwrap(), "--out", rep.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(rep.join("summary.md")).unwrap();
    for needle in [
        "FAKE DATA",
        "## Per-row bound checks",
        "## d / m / patch / C=1",
        "## d / m / patch / C=5",
        "| 0 (baseline) |",
        "α* interp.",
        "ε = 8",
        "clip only (σ=0)",
    ] {
        assert!(md.contains(needle), "`{needle}` missing from summary.md");
    }
    let mut pngs = 0;
    for e in std::fs::read_dir(&rep).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        match p.extension().and_then(|x| x.to_str()) {
            Some("png") => {
                pngs += 1;
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
                assert!(bytes.len() > 20_000, "{} suspiciously small", p.display());
                let name = p.file_name().unwrap().to_str().unwrap();
                assert!(md.contains(name), "{name} not linked from summary.md");
            }
            Some("svg") => {
                let s = String::from_utf8(bytes).unwrap();
                assert!(s.starts_with("<svg") && s.contains("<text"));
                let name = p.file_name().unwrap().to_str().unwrap();
                assert!(name.contains(".sandwich_") || s.contains("ε"), "{name}: no ε");
            }
            _ => {}
        }
    }
    // 2 clip panels × (3 plots + 4 sandwich plots, one per privacy arm)
    assert_eq!(pngs, 14);
}

const SPEC_SEEDS: &str = r#"
name = "seeds"
[grid]
dataset = ["d"]
model = ["m"]
collectives = [{ name = "patch", spec = "trigger=patch:size=3,target=0" }]
alpha = [0.0, 0.01, 0.05]
privacy = ["sigma=1", "sigma=0"]
clip = [1.0]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
[train]
epochs = 1
batch_size = 8
lr = 0.1
"#;

/// Ten seeds per configuration (fake runner), with the schema-3 bound columns filled in by hand:
/// config_stats.csv and the sandwich plots exist, the counts are printed, and a planted
/// violation (a "guarantee" above every seed) is reported as one.
#[test]
fn report_per_configuration_statistics_and_sandwich() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = fake_sweep(d, SPEC_SEEDS);
    // Fill the bound columns: members = 1000·α; a DP-SGD guarantee of 0.1 (consistent), except at
    // σ = 1, α = 0.05 where 0.999 lies above every seed's success (a planted violation).
    let csv_path = out.join("results.csv");
    let mut rd = csv::Reader::from_path(&csv_path).unwrap();
    let head = rd.headers().unwrap().clone();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap_or_else(|| panic!("no column {n}"));
    let (alpha, privacy, members, lb, kind, hp, beta) = (
        col("alpha"),
        col("privacy"),
        col("members"),
        col("dpsgd_lb"),
        col("dpsgd_lb_kind"),
        col("dpsgd_lb_hp"),
        col("bound_beta"),
    );
    let mut wr = csv::Writer::from_path(d.join("fixture.csv")).unwrap();
    wr.write_record(&head).unwrap();
    for rec in rd.records() {
        let mut v: Vec<String> = rec.unwrap().iter().map(str::to_string).collect();
        let a: f64 = v[alpha].parse().unwrap();
        if a > 0.0 {
            v[members] = format!("{}", (1000.0 * a).round() as u64);
            let planted = v[privacy] == "sigma=1" && a == 0.05;
            v[lb] = if planted { "0.999".into() } else { "0.1".into() };
            v[kind] = "guarantee".into();
            v[hp] = "0.05".into();
            v[beta] = "0.05".into();
        }
        wr.write_record(&v).unwrap();
    }
    wr.flush().unwrap();
    let rep = d.join("rep");
    let o = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args(["report", d.join("fixture.csv").to_str().unwrap(), "--out", rep.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Counts printed: four α > 0 configurations; dpsgd_lb: one violated, three consistent.
    assert!(err.contains("dpsgd_lb (E[S]): 4 informative (3 consistent, 1 violated)"), "{err}");
    assert!(err.contains("WARNING: ") && err.contains("bound violation"), "{err}");
    assert!(err.contains("ceiling at UCB(E[S0]): "), "{err}");
    let md = std::fs::read_to_string(rep.join("summary.md")).unwrap();
    for needle in [
        "## Per-configuration statistics over seeds",
        "distribution-free",
        "BOUND VIOLATIONS",
        "**VIOLATED**",
        "Clip-only (σ = 0) configurations with α > 0, out of the ceiling's scope: 2.",
    ] {
        assert!(md.contains(needle), "`{needle}` missing from summary.md");
    }
    // config_stats.csv: one line per configuration (2 privacy arms × 3 α), 10 seeds each, the
    // σ = 1 lines with a ceiling computed from the α = 0 baseline (10 seeds).
    let mut rd = csv::Reader::from_path(rep.join("config_stats.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let c = |n: &str| h.iter().position(|x| x == n).unwrap();
    let recs: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 6);
    assert!(recs.iter().all(|r| &r[c("n_seeds")] == "10"));
    let s1: Vec<&csv::StringRecord> =
        recs.iter().filter(|r| &r[c("privacy")] == "sigma=1" && &r[c("alpha")] != "0.0").collect();
    assert_eq!(s1.len(), 2);
    for r in &s1 {
        assert_eq!(&r[c("baseline_n")], "10");
        let ceil: f64 = r[c("ceiling_at_ucb")].parse().unwrap();
        let ucb: f64 = r[c("baseline_ucb")].parse().unwrap();
        assert!(ceil >= ucb && ceil <= 1.0, "ceiling {ceil} vs UCB(S0) {ucb}");
        let (lo, mean, hi): (f64, f64, f64) =
            (r[c("ci_lo")].parse().unwrap(), r[c("mean")].parse().unwrap(), r[c("ci_hi")].parse().unwrap());
        assert!(lo <= mean && mean <= hi);
    }
    let planted = s1.iter().find(|r| &r[c("alpha")] == "0.05").unwrap();
    assert_eq!(&planted[c("dpsgd_verdict")], "VIOLATED");
    // Sandwich plots: one per arm, PNG and SVG, linked from summary.md.
    for arm in ["sigma_1", "sigma_0"] {
        let name = format!("seeds_d_m_patch_C_1.sandwich_{arm}.png");
        let png = std::fs::read(rep.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 20_000, "{name} suspiciously small");
        assert!(md.contains(&name), "{name} not linked from summary.md");
        let svg = std::fs::read_to_string(rep.join(name.replace(".png", ".svg"))).unwrap();
        assert!(svg.contains("ceiling") || arm == "sigma_0", "{arm}: no ceiling in the SVG");
        assert!(svg.contains("per-seed success"));
    }
}
