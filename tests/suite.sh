#!/usr/bin/env bash
# `make test`: format and lint checks, then the whole test suite in release mode, closing with one
# line that counts honest skips apart from passes:
#   make-test: P passed, F failed, S skipped
# P counts tests that ran their path; S counts honest skips (tests printing `skipped: <test>: …`
# because this machine lacks AVX-512F or CUDA, or a full data set is not fetched; see
# src/hardware.rs) plus #[ignore]d tests. CROWDOUT_REQUIRE=avx512,cuda,data turns those skips
# into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
JOBS=${JOBS:-2}

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
avx=$(grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo yes || echo no)
gpu=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | head -1 || true)
echo "make-test: machine: ${cpu:-unknown CPU}, $(nproc) cores, avx512f ${avx}, GPU: ${gpu:-none}${CROWDOUT_REQUIRE:+, CROWDOUT_REQUIRE=$CROWDOUT_REQUIRE}"

# rustfmt and clippy come with rustup's default profile; add them where a minimal one left them out.
if ! { $CARGO fmt --version && $CARGO clippy --version; } >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
echo "make-test: cargo fmt --check"
$CARGO fmt --check
echo "make-test: cargo clippy --all-targets -- -D warnings"
$CARGO clippy --release --all-targets --quiet -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary must not hide the ones after it.
$CARGO test --release --no-fail-fast -- --test-threads="$JOBS" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
passed=$(sum passed)
failed=$(sum failed)
ignored=$(sum ignored)
hw=$(grep -cE '^skipped: ' "$log" || true)
echo
if [ "$hw" -gt 0 ]; then
  echo "make-test: skips ($hw):"
  grep -E '^skipped: ' "$log" | sed 's/^/  /'
else
  echo "make-test: no skips (every AVX-512, CUDA and full-data path ran)"
fi
[ "$ignored" -gt 0 ] && echo "make-test: $ignored #[ignore]d (run with: cargo test --release -- --ignored)"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # a build error or crash counts
echo "make-test: $((passed - hw)) passed, $failed failed, $((hw + ignored)) skipped"
exit "$rc"
