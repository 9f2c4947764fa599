# Sourced by run.sh and run-overfit.sh: runs the four conditions (non-private / ε = 8, each without
# and with a 1 % collective) of `crowdout audit mia` with the caller's COMMON flags, one after the
# other, 2 threads, each into NAME.json and NAME.log (command, load, GNU time) in $OUT.
# Needs: BIN, OUT, COMMON (array), K; optional PREFIX and SUF around the file names.
COLL="alpha=0.01,trigger=patch:size=3:pos=br:value=1,target=0,strategy=feature-label"
PREFIX=${PREFIX:-}
SUF=${SUF:-}
run() {
  local name=$1; shift
  echo "== $name: $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/$name.log"
  echo "$BIN audit --threads 2 --json mia ${COMMON[*]} $*" >> "$OUT/$name.log"
  /usr/bin/time -f "wall %e s, user %U s, max RSS %M kB" -a -o "$OUT/$name.log" \
    "$BIN" audit --threads 2 --json mia "${COMMON[@]}" "$@" > "$OUT/$name.json.part" 2>> "$OUT/$name.log"
  mv "$OUT/$name.json.part" "$OUT/$name.json"
  echo "== done $(date -u +%FT%TZ)" >> "$OUT/$name.log"
}
run "${PREFIX}nonprivate-k$K$SUF"
run "${PREFIX}nonprivate-collective-k$K$SUF" --collective "$COLL"
run "${PREFIX}eps8-k$K$SUF"                  --epsilon 8 --delta 1e-5
run "${PREFIX}eps8-collective-k$K$SUF"       --epsilon 8 --delta 1e-5 --collective "$COLL"
