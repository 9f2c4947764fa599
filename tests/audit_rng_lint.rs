//! Lint: no libtorch random-number generation anywhere in `src/`.
//!
//! All randomness in crowdout (initialisation, shuffling, Poisson sampling, privacy noise, audit
//! choices) must come from per-run ChaCha20 streams (`crowdout::rng`): libtorch's generator is
//! global per process (not reproducible when cells run in parallel) and not cryptographically
//! secure (see docs/security.md). This test scans every `.rs` file under `src/` (comments
//! stripped) for libtorch RNG entry points and fails on any hit not in [`ALLOWED`].

use std::path::{Path, PathBuf};

/// libtorch RNG functions/methods (tch names; each also checked with tch's `f_`/`g_` prefixes).
const RNG_NAMES: &[&str] = &[
    "randn",
    "rand",
    "randint",
    "randperm",
    "rand_like",
    "randn_like",
    "randint_like",
    "bernoulli",
    "bernoulli_",
    "normal_",
    "normal_functional",
    "uniform_",
    "random_",
    "exponential_",
    "cauchy_",
    "geometric_",
    "log_normal_",
    "multinomial",
    "poisson",
    "dropout",
    "dropout_",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "rrelu",
    "rrelu_",
    "rrelu_with_noise",
    "fused_dropout",
    "native_dropout",
];

/// Names that are a hit wherever they appear in code (libtorch's seeding and tch's
/// `nn` initialisers / `VarStore`, which initialise parameters from libtorch's generator).
const ANYWHERE: &[&str] =
    &["manual_seed", "VarStore", "nn::Init", "nn::linear", "nn::conv2d", "nn::embedding", "nn::Dropout"];

/// (file suffix, pattern, why it is allowed). Empty: no file needs an exception today.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// Code part of a line: everything before a `//` that is not inside a string literal.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && i + 1 < bytes.len() && bytes[i + 1] == b'/' => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// The RNG patterns found in one line of code.
fn hits(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in RNG_NAMES {
        for variant in [name.to_string(), format!("f_{name}"), format!("g_{name}")] {
            for prefix in [".", "Tensor::", "tch::"] {
                let pat = format!("{prefix}{variant}");
                let mut from = 0;
                while let Some(pos) = code[from..].find(&pat) {
                    let end = from + pos + pat.len();
                    let rest = code[end..].trim_start();
                    if rest.starts_with('(') || rest.starts_with("::<") {
                        out.push(pat.clone());
                    }
                    from = end;
                }
            }
        }
    }
    for pat in ANYWHERE {
        if code.contains(pat) {
            out.push(pat.to_string());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn scanner_finds_known_rng_calls() {
    // the lint is only worth something if it catches the calls it is meant to catch
    assert_eq!(hits("let x = Tensor::randn([3], (Kind::Float, Device::Cpu));"), vec!["Tensor::randn"]);
    assert_eq!(hits("t.f_normal_(0.0, 1.0)?;"), vec![".f_normal_"]);
    assert_eq!(hits("let _ = w.uniform_ (-1.0, 1.0);"), vec![".uniform_"]);
    assert_eq!(hits("let h = x.dropout(0.5, true);"), vec![".dropout"]);
    assert_eq!(hits("tch::manual_seed(1);"), vec!["manual_seed"]);
    assert!(hits("let vs = nn::VarStore::new(Device::Cpu);").contains(&"VarStore".to_string()));
    assert!(hits("let mut rng = rand::rngs::SysRng; init.normal(&[3]); let r = rng.random_range(0..3);")
        .is_empty());
    assert!(hits(r#"let s = "noise=0.2:dropout";"#).is_empty());
    assert_eq!(strip_comment("a.rand(); // Tensor::randn("), "a.rand(); ");
    assert_eq!(strip_comment(r#"let s = "http://x"; // c"#), r#"let s = "http://x"; "#);
}

#[test]
fn no_libtorch_rng_in_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "expected the crate's sources under {}", src.display());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            for h in hits(strip_comment(line)) {
                let allowed =
                    ALLOWED.iter().any(|(file, pat, _why)| f.to_string_lossy().ends_with(file) && *pat == h);
                if !allowed {
                    bad.push(format!("{}:{}: `{h}` in: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "libtorch RNG calls found (use crowdout::rng ChaCha20 streams instead):\n{}",
        bad.join("\n")
    );
}
