#!/usr/bin/env bash
# Supplement (not part of the issue's four conditions): the same four conditions on a target that
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
PREFIX="overfit-"
. "$(dirname "$0")/conditions.sh"
