#!/usr/bin/env bash
# Ours (criterion, benches/dp_step.rs) and Opacus (benches/opacus_step.py), workload by workload,
# back to back so that both see the same machine state. Usage: benches/compare.sh [W1 W2 W4 W3]
# Needs `make bench-opacus` once (installs opacus into the venv). Prints criterion's time lines
# and Opacus's median steps; benches/README.md holds the table made from them.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
cargo bench --bench dp_step --no-run >/dev/null 2>&1
for w in "${@:-W1 W2 W4 W3}"; do
  for x in $w; do
    echo "== $x"
    cargo bench --bench dp_step -- "^$x" 2>/dev/null | grep -E "time:" || true
    "$py" benches/opacus_step.py "$x"
  done
done
