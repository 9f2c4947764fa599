//! Honest skips for tests whose path needs hardware this machine may lack (AVX-512F, a CUDA GPU).
//!
//! A gated test calls [`crate::require!`]`(Avx512f)` (or is written with [`crate::test_device!`]):
//! when the feature is present the test runs its path; when it is absent the test writes
//! `skipped: <test>: <reason>` to the process's stderr (around libtest's capture, so the line shows
//! in every `cargo test` run, passing or not) and returns. With `CROWDOUT_REQUIRE=avx512,cuda`
//! (any comma-separated subset) an absent listed feature fails the test instead, so a machine that
//! is meant to have it cannot pass by skipping. `make test` counts the `skipped:` lines in its
//! closing summary.

use std::io::Write;

/// The environment variable that turns skips into failures: a comma-separated list of
/// [`Feature::name`]s and `data` (the full data sets of tests/data_real.rs), or `all`.
pub const REQUIRE_ENV: &str = "CROWDOUT_REQUIRE";

/// A piece of hardware some test path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// The AVX-512F kernels: the noise keystream, the direct convolution gradients, the transposes.
    Avx512f,
    /// A CUDA device visible to libtorch.
    Cuda,
}

impl Feature {
    /// The name used in `CROWDOUT_REQUIRE` and in skip lines.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Avx512f => "avx512",
            Feature::Cuda => "cuda",
        }
    }

    /// Whether this process has it.
    pub fn present(self) -> bool {
        match self {
            Feature::Avx512f => crate::simd::has_avx512f(),
            Feature::Cuda => tch::Cuda::is_available(),
        }
    }

    fn absent_reason(self) -> &'static str {
        match self {
            Feature::Avx512f => "this CPU has no AVX-512F",
            Feature::Cuda => "libtorch sees no CUDA device",
        }
    }
}

/// Whether `CROWDOUT_REQUIRE` (given as `list`) names `feature`.
fn listed_name(list: &str, name: &str) -> bool {
    list.split(',').map(str::trim).any(|f| f.eq_ignore_ascii_case(name) || f == "all")
}

/// The features this process has, as `avx512f yes/no, cuda yes/no` (for test logs and READMEs).
pub fn summary() -> String {
    [Feature::Avx512f, Feature::Cuda]
        .iter()
        .map(|f| format!("{} {}", f.name(), if f.present() { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `test` may run the path that needs `feature`. If the feature is absent: panics when
/// `CROWDOUT_REQUIRE` lists it, otherwise reports `skipped: <test>: <reason>` on stderr and
/// returns false. The line names the test by its libtest thread name (its full path), else by
/// `fallback` (the macros pass the calling module's path).
pub fn have(feature: Feature, fallback: &str) -> bool {
    if feature.present() {
        return true;
    }
    skip(feature.name(), &format!("needs {} but {}", feature.name(), feature.absent_reason()), fallback);
    false
}

/// Reports an honest skip of the calling test: `skipped: <test>: <reason>` on stderr, or a panic
/// when `CROWDOUT_REQUIRE` lists `requirement` (a [`Feature::name`], or `data` for fetched data
/// sets). Also for skips that are not about hardware, e.g. a data set that is not fetched.
pub fn skip(requirement: &str, reason: &str, fallback: &str) {
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name,
        _ => fallback,
    };
    let required = std::env::var(REQUIRE_ENV).map(|v| listed_name(&v, requirement)).unwrap_or(false);
    assert!(!required, "{test}: {REQUIRE_ENV} requires {requirement}: {reason}");
    // Straight to the stream, not through eprintln!: libtest captures the macros' output of
    // passing tests, and a skip must be seen.
    let line = format!("skipped: {test}: {reason}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Returns from the calling test, with an honest skip line, unless the hardware is there
/// (see [`have`]): `crowdout::require!(Avx512f);` or `crowdout::require!(Cuda);`.
#[macro_export]
macro_rules! require {
    ($feature:ident) => {
        if !$crate::hardware::have($crate::hardware::Feature::$feature, module_path!()) {
            return;
        }
    };
}

/// One test body, run once per device: `<name>::cpu` always, `<name>::cuda` on CUDA device 0 or
/// an honest skip (see [`have`]). `make test-cuda` runs the `::cuda` ones with `CROWDOUT_REQUIRE=cuda`.
///
/// ```ignore
/// crowdout::test_device!(fn noise_is_exact(device) { /* uses `device: tch::Device` */ });
/// ```
#[macro_export]
macro_rules! test_device {
    ($(#[$meta:meta])* fn $name:ident($device:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($device: tch::Device) $body

            #[test]
            fn cpu() {
                body(tch::Device::Cpu)
            }

            #[test]
            fn cuda() {
                if $crate::hardware::have($crate::hardware::Feature::Cuda, module_path!()) {
                    body(tch::Device::Cuda(0))
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_require_list_is_parsed_by_name() {
        assert!(listed_name("avx512,cuda", Feature::Cuda.name()));
        assert!(listed_name(" AVX512 ", Feature::Avx512f.name()));
        assert!(listed_name("all", Feature::Cuda.name()));
        assert!(listed_name("cuda,data", "data"));
        assert!(!listed_name("avx512", Feature::Cuda.name()));
        assert!(!listed_name("", Feature::Avx512f.name()));
    }

    #[test]
    fn summary_names_each_feature() {
        let s = summary();
        assert!(s.contains("avx512 ") && s.contains("cuda "), "{s}");
    }
}
