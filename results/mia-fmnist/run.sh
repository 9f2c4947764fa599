#!/usr/bin/env bash
# Issue 18 part 5: membership inference with and without a 1 % collective, non-private and ε = 8.
# Run from the repository root: results/mia-fmnist/run.sh [SHADOWS] (default 16).
# Needs CROWDOUT_DATA pointing at a cache with fashion-mnist. One condition at a time, 2 threads.
set -euo pipefail
K=${1:-16}
BIN=${CROWDOUT_BIN:-target/release/crowdout}
OUT=results/mia-fmnist
COMMON=(--dataset fashion-mnist --members 60000 --non-members 10000 --model cnn --epochs 3
        --batch-size 256 --lr 0.05 --momentum 0.9 --shadows "$K" --seed 0)
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
run "nonprivate-k$K"            
run "nonprivate-collective-k$K" --collective "$COLL"
run "eps8-k$K"                  --epsilon 8 --delta 1e-5
run "eps8-collective-k$K"       --epsilon 8 --delta 1e-5 --collective "$COLL"
