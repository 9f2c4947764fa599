#!/bin/bash
# Merge the shard files of one sweep into <out>/results.csv and write the report: for shards run
# by hand (`crowdout sweep --shard i/N`). `crowdout sweep --slurm` writes and submits its own merge
# job (<out>/slurm/merge.sbatch); see README.md here.
#   experiments/slurm/merge.sh results/mnist
# An existing <out>/results.csv is merged in (its rows are kept). Fails (non-zero) if two files
# disagree on a cell; failed cells stay listed in summary.md.
set -euo pipefail
OUT="${1:?usage: merge.sh OUT_DIR}"
CROWDOUT="${CROWDOUT:-crowdout}"
shopt -s nullglob
SHARDS=("$OUT"/results.shard-*-of-*.csv)
if [ ${#SHARDS[@]} -eq 0 ]; then
  echo "merge.sh: no $OUT/results.shard-*-of-*.csv" >&2
  exit 2
fi
# All shard files must come from the same split.
N=$(basename "${SHARDS[0]}" | sed -E 's/.*-of-([0-9]+)\.csv/\1/')
for f in "${SHARDS[@]}"; do
  case "$(basename "$f")" in
    *-of-"$N".csv) ;;
    *) echo "merge.sh: $f is from another split than -of-$N" >&2; exit 2 ;;
  esac
done
if [ ${#SHARDS[@]} -ne "$N" ]; then
  echo "merge.sh: warning: ${#SHARDS[@]} of $N shard files present" >&2
fi
PREVIOUS=()
if [ -f "$OUT/results.csv" ]; then
  cp "$OUT/results.csv" "$OUT/results.before-merge.csv"
  PREVIOUS=("$OUT/results.before-merge.csv")
fi
"$CROWDOUT" report --merge "${PREVIOUS[@]}" "${SHARDS[@]}" --out "$OUT/results.csv"
"$CROWDOUT" report "$OUT/results.csv" --out "$OUT"
