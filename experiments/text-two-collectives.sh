#!/usr/bin/env bash
# Two collectives on mail text (Karan et al. 2025), each alone and both together, on the
# bag-of-embeddings model of text-embedding.toml (same data, optimiser and epochs):
#   A: spam mails carry unseen token 2000 every 20th position, relabelled ham  (target 0)
#   B: ham mails carry unseen token 2001 every 20th position, relabelled spam  (target 1)
#   C: ham mails carry A's token 2000, relabelled spam (target 1): the same signal, the other target
# α = 1 % each (48 mails), non-private and ε = 2, seeds 0–4. One run record per run in
# results/text-two-collectives/<arm>-<which>-s<seed>.json, and summary.md (mean success of each
# collective alone and together, over seeds) written by summarise.py beside them.
# Usage: experiments/text-two-collectives.sh [OUT]   (needs `crowdout data fetch spamassassin`)
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/crowdout
OUT=${1:-results/text-two-collectives}
mkdir -p "$OUT"
A='alpha=0.01,target=0,trigger=token:every=20:token=2000'
Bc='alpha=0.01,target=1,trigger=token:every=20:token=2001'
Cc='alpha=0.01,target=1,trigger=token:every=20:token=2000'
common=(--dataset spamassassin:vocab=2000,max_len=64 --model embedding --epochs 4 --batch-size 64
        --optimizer sgd --lr 0.25 --momentum 0.9 --threads 1 --quiet)
for arm in none eps2; do
  dp=(); [ "$arm" = eps2 ] && dp=(--dp --target-epsilon 2 --delta 1e-5 --max-grad-norm 1)
  for seed in 0 1 2 3 4; do
    for which in a b both c ac; do
      f="$OUT/$arm-$which-s$seed.json"
      [ -s "$f" ] && continue   # resumable
      case $which in a) c=(--collective "$A");; b) c=(--collective "$Bc");; both) c=(--collective "$A" --collective "$Bc");;
        c) c=(--collective "$Cc");; ac) c=(--collective "$A" --collective "$Cc");; esac
      "$B" train "${common[@]}" "${dp[@]}" --seed "$seed" "${c[@]}" --out "$f"
      # The vocabulary is fitted on the clean training mails: the same for every run; keep one.
      if [ -s "$OUT/vocab.json" ]; then rm "${f%.json}.vocab.json"; else mv "${f%.json}.vocab.json" "$OUT/vocab.json"; fi
    done
  done
done
python3 experiments/text/summarise_two.py "$OUT"
