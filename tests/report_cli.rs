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

#[test]
fn report_writes_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = d.join("o");
    let st = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args(["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-progress"])
        .env("CROWDOUT_FAKE_RUNNER", "sleep-ms:0")
        .status()
        .unwrap();
    assert!(st.success());
    let rep = d.join("rep");
    let o = Command::new(env!("CARGO_BIN_EXE_crowdout"))
        .args(["report", out.join("results.csv").to_str().unwrap(), "--out", rep.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(rep.join("summary.md")).unwrap();
    for needle in [
        "FAKE DATA",
        "## Bound checks",
        "## d / m / patch / C=1",
        "## d / m / patch / C=5",
        "| 0 (baseline) |",
        "α* interp.",
        "ε = 8",
        "clip only (σ=0)",
    ] {
        assert!(md.contains(needle), "`{needle}` missing from summary.md");
    }
    // 2 clip panels × 3 plots × (png + svg)
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
                assert!(s.starts_with("<svg") && s.contains("<text") && s.contains("ε"));
            }
            _ => {}
        }
    }
    assert_eq!(pngs, 6);
}
