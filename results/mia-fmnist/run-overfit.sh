#!/usr/bin/env bash
# Supplement (not part of the four conditions): the same four conditions on a target that
# over-fits, so that membership inference has something to find: the first 8,000 training images
# as members, the first 2,000 test images as non-members, 30 epochs (α = 1 % = 80 records).
# Run from the repository root: results/mia-fmnist/run-overfit.sh [SHADOWS [SEED]] (16, 0);
# a seed other than 0 adds -sSEED to the file names.
set -euo pipefail
K=${1:-16}
SEED=${2:-0}
SUF=""
if [ "$SEED" != 0 ]; then SUF="-s$SEED"; fi
BIN=${CROWDOUT_BIN:-target/release/crowdout}
OUT=results/mia-fmnist
COMMON=(--dataset fashion-mnist --members 8000 --non-members 2000 --model cnn --epochs 30
        --batch-size 256 --lr 0.05 --momentum 0.9 --shadows "$K" --seed "$SEED")
COLL="alpha=0.01,trigger=patch:size=3:pos=br:value=1,target=0,strategy=feature-label"
run() {
  local name=$1; shift
  echo "== $name: $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/$name.log"
  echo "$BIN audit --threads 2 --json mia ${COMMON[*]} $*" >> "$OUT/$name.log"
  /usr/bin/time -f "wall %e s, user %U s, max RSS %M kB" -a -o "$OUT/$name.log" \
    "$BIN" audit --threads 2 --json mia "${COMMON[@]}" "$@" > "$OUT/$name.json.part" 2>> "$OUT/$name.log"
  mv "$OUT/$name.json.part" "$OUT/$name.json"
  echo "== done $(date -u +%FT%TZ)" >> "$OUT/$name.log"
}
run "overfit-nonprivate-k$K$SUF"
run "overfit-nonprivate-collective-k$K$SUF" --collective "$COLL"
run "overfit-eps8-k$K$SUF"                  --epsilon 8 --delta 1e-5
run "overfit-eps8-collective-k$K$SUF"       --epsilon 8 --delta 1e-5 --collective "$COLL"
