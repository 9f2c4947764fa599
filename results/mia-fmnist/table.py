#!/usr/bin/env python3
"""Markdown tables of the membership-inference reports in this folder (stdlib only).

Usage: results/mia-fmnist/table.py K > results/mia-fmnist/table-kK.md
Reads {nonprivate,nonprivate-collective,eps8,eps8-collective}-kK.json and their .log (wall time).
"""
import json
import re
import sys
from pathlib import Path

here = Path(__file__).parent
k = sys.argv[1] if len(sys.argv) > 1 else "16"
conds = [
    ("non-private, no collective", f"nonprivate-k{k}"),
    ("non-private, collective 1 %", f"nonprivate-collective-k{k}"),
    ("ε = 8, no collective", f"eps8-k{k}"),
    ("ε = 8, collective 1 %", f"eps8-collective-k{k}"),
]


def cell(r, key):
    a = r.get(key)
    if a is None:
        return "—"
    return f"{a:.4f} [{r[key + '_lo']:.4f}, {r[key + '_hi']:.4f}]"


def wall(name):
    log = here / f"{name}.log"
    m = re.search(r"wall ([0-9.]+) s", log.read_text()) if log.exists() else None
    return f"{float(m.group(1)):.0f} s" if m else "not finished"


reports = {}
for label, name in conds:
    p = here / f"{name}.json"
    if p.exists():
        reports[name] = json.loads(p.read_text())

print(f"### K = {k} shadow models\n")
print("| condition | σ | ε (accountant) | steps | train acc | test acc | collective members | collective success | wall time |")
print("|---|---|---|---|---|---|---|---|---|")
for label, name in conds:
    r = reports.get(name)
    if r is None:
        print(f"| {label} | not run or not finished | | | | | | | {wall(name)} |")
        continue
    sigma = "—" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.4f}"
    eps = "— (non-private)" if r["accountant_epsilon"] is None else f"{r['accountant_epsilon']:.3f}"
    succ = "—" if r["collective_success"] is None else f"{r['collective_success']:.4f}"
    print(
        f"| {label} | {sigma} | {eps} | {r['steps']} | {r['train_accuracy']:.4f} | "
        f"{r['heldout_accuracy']:.4f} | {r['collective_members']} | {succ} | {wall(name)} |"
    )
print()
print("AUC [95% DeLong interval over target records]; positives as named, negatives = the 10,000 non-members.\n")
print("| condition | attack | all members | collective only | non-collective only |")
print("|---|---|---|---|---|")
for label, name in conds:
    r = reports.get(name)
    if r is None:
        continue
    for attack, key in [("LiRA online", "auc_lira_online"), ("LiRA offline", "auc_lira_offline"), ("loss threshold", "auc_loss")]:
        print(f"| {label} | {attack} | {cell(r, key)} | {cell(r, key + '_collective')} | {cell(r, key + '_non_collective')} |")
