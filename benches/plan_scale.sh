#!/usr/bin/env bash
# Planning and merging at cluster scale (issue 17): a grid of 1000 α × 1000 seeds = 10⁶ cells of
# adult-mini, and 10⁶ result rows in SHARDS shard files.
#
#   benches/plan_scale.sh [BIN] [WORKDIR]      # defaults: target/release/crowdout, target/plan-scale
#
# Times (wall, max RSS from /usr/bin/time) of:
#   1. `sweep --dry-run` of the whole grid (expand, hash, count; lists the cells where the binary
#      has no --list flag, i.e. before issue 17, whose dry run always listed every cell);
#   2. `sweep --dry-run --shard 1/1000` (what one array task plans before it starts);
#   3. `sweep --dry-run --shards SHARDS` with every row present (done/todo per shard, cost estimate);
#   4. `report --merge` of the SHARDS shard files (10⁶ rows) into one CSV.
# The rows are fake (a fake-runner row per cell with that cell's config columns and hash), written
# by Python from the cell listing; nothing is trained. Generated files stay in WORKDIR (gitignored
# under target/). Run it on an otherwise idle machine: these are wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/crowdout}")
W=${2:-target/plan-scale}
SHARDS=${SHARDS:-8}
mkdir -p "$W"
W=$(realpath "$W")
rm -rf "$W/out" "$W/template" "$W/merged.csv"

python3 - "$W/grid.toml" "$W/template.toml" <<'EOF'
import sys
train = "[train]\nepochs = 1\nbatch_size = 64\nlr = 0.1\n"
head = '''name = "plan-scale"
[grid]
dataset = ["adult-mini"]
model = ["softmax"]
collectives = [{ name = "age", spec = "trigger=offset:feature=0:shift_std=4,target=1,strategy=feature-label" }]
privacy = ["eps=8"]
clip = [1.0]
'''
alphas = ", ".join(f"{i / 1000:.3f}" for i in range(1000))
seeds = ", ".join(str(i) for i in range(1000))
open(sys.argv[1], "w").write(head + f"alpha = [{alphas}]\nseed = [{seeds}]\n" + train)
open(sys.argv[2], "w").write(head + "alpha = [0.0, 0.5]\nseed = [0]\n" + train)
EOF

t() { # label, stdout file, command...: runs it, prints wall time and max RSS
  local label=$1 out=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" > "$out"
  read -r secs rss < "$W/time.txt"
  printf '%-58s %8.2f s  max RSS %6.0f MB\n' "$label" "$secs" "$((rss / 1024))"
}

if "$BIN" sweep --help | grep -q -- '--list'; then LIST=--list; NEW=1; else LIST=; NEW=; fi
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"
t "1. dry run, 10^6 cells (summary)" "$W/dry.txt" "$BIN" sweep "$W/grid.toml" --out "$W/out" --dry-run
grep -v -P '^\d+\t' "$W/dry.txt" | grep -v '^index' | sed 's/^/     /'
t "   dry run, 10^6 cells, every cell listed" "$W/cells.tsv" "$BIN" sweep "$W/grid.toml" --out "$W/out" --dry-run $LIST
t "2. dry run of one task: --shard 1/1000" /dev/null "$BIN" sweep "$W/grid.toml" --out "$W/out" --dry-run --shard 1/1000

# One fake row as the template of every row (the fake runner trains nothing).
CROWDOUT_FAKE_RUNNER=1 "$BIN" sweep "$W/template.toml" --out "$W/template" --no-progress 2> /dev/null
python3 - "$W/cells.tsv" "$W/template/results.csv" "$W/out" "$SHARDS" <<'EOF'
import csv, os, random, sys
cells, template, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(template) as f:
    r = csv.reader(f)
    header = next(r)
    row = next(r)
col = {h: i for i, h in enumerate(header)}
os.makedirs(out, exist_ok=True)
files = [open(f"{out}/results.shard-{i}-of-{n}.csv", "w", newline="") for i in range(1, n + 1)]
writers = [csv.writer(f, lineterminator="\n") for f in files]
for w in writers:
    w.writerow(header)
rng = random.Random(0)
with open(cells) as f:
    for line in f:
        p = line.rstrip("\n").split("\t")
        if not p[0].isdigit():
            continue
        k = int(p[0])
        row[col["config_hash"]], row[col["alpha"]], row[col["seed"]] = p[1], p[6], p[9]
        row[col["wall_s"]] = f"{rng.uniform(10, 14):.3f}"
        row[col["torch_threads"]] = "1"
        writers[k % n].writerow(row)
for f in files:
    f.close()
EOF
echo "   rows: $(cat "$W"/out/results.shard-*-of-"$SHARDS".csv | wc -l) lines in $SHARDS shard files, $(du -sh "$W/out" | cut -f1)"
if [ -n "$NEW" ]; then
  t "3. dry run, --shards $SHARDS, all rows present" "$W/dry-shards.txt" "$BIN" sweep "$W/grid.toml" --out "$W/out" --dry-run --shards "$SHARDS"
  grep -E '^(shard files|cost per cell)' "$W/dry-shards.txt" | sed 's/^/     /'
fi
t "4. report --merge, 10^6 rows from $SHARDS files" /dev/null "$BIN" report --merge "$W"/out/results.shard-*-of-"$SHARDS".csv --out "$W/merged.csv"
echo "   merged: $(($(wc -l < "$W/merged.csv") - 1)) rows"
