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
. "$(dirname "$0")/conditions.sh"
