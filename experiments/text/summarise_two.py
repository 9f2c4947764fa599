"""Summarise results/text-two-collectives/*.json (written by experiments/text-two-collectives.sh):
per arm, the mean success of collective A and B over seeds when alone and when both plant, with
the min-max over seeds, and the clean accuracy. Writes summary.md in that folder and prints it."""
import glob, json, os, statistics, sys

out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*-s*.json"))):
    arm, which, seed = os.path.basename(f)[:-5].rsplit("-", 2)
    r = json.load(open(f))
    runs.setdefault((arm, which), []).append(r)


def rates(rs, k):
    return [r["success"]["per_collective"][k]["non_target"]["rate"] for r in rs]


def fmt(v):
    return f"{100 * statistics.mean(v):.1f} % ({100 * min(v):.1f}–{100 * max(v):.1f}, n = {len(v)})"


lines = ["# Two collectives on SpamAssassin (bag-of-embeddings, α = 1 % each)", "",
         "Success = share of the other class's test mails, token planted, classified as the collective's",
         "target; mean over seeds (min–max). A: token 2000, spam → ham. B: token 2001, ham → spam.",
         "C: token 2000 (A's), ham → spam.", "",
         "| arm | A alone | A beside B | B alone | B beside A | clean accuracy (both) |", "|---|---|---|---|---|---|"]
for arm in sorted({a for a, _ in runs}):
    a, b, both = runs.get((arm, "a"), []), runs.get((arm, "b"), []), runs.get((arm, "both"), [])
    if not (a and b and both):
        continue
    acc = [r["clean_accuracy"]["rate"] for r in both]
    lines.append(f"| {arm} | {fmt(rates(a, 0))} | {fmt(rates(both, 0))} | {fmt(rates(b, 0))} | {fmt(rates(both, 1))} | "
                 f"{100 * statistics.mean(acc):.1f} % |")
lines += ["", "| arm | A alone | A beside C (same token) | C alone | C beside A |", "|---|---|---|---|---|"]
for arm in sorted({a for a, _ in runs}):
    a, c, ac = runs.get((arm, "a"), []), runs.get((arm, "c"), []), runs.get((arm, "ac"), [])
    if a and c and ac:
        lines.append(f"| {arm} | {fmt(rates(a, 0))} | {fmt(rates(ac, 0))} | {fmt(rates(c, 0))} | {fmt(rates(ac, 1))} |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
print(text)
