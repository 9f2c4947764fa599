//! The built binary runs with `LD_LIBRARY_PATH` unset: libtorch is found through the rpath that
//! build.rs embeds, and a real tensor computation goes through it.

use std::process::Command;

fn crowdout() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crowdout"));
    c.env_remove("LD_LIBRARY_PATH").env_remove("LIBTORCH");
    c
}

#[test]
fn binary_loads_libtorch_without_ld_library_path() {
    let out = crowdout().arg("--version").output().expect("run crowdout");
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("crowdout "));
}

#[test]
fn binary_computes_with_libtorch_without_ld_library_path() {
    // `account` is pure Rust, so use `data info` on the committed fixture: it builds tensors.
    let out = crowdout().args(["data", "info", "fashion-mnist-mini"]).output().expect("run crowdout");
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("train      1000 examples"), "unexpected output: {stdout}");
}
