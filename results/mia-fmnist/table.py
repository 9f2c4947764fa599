#!/usr/bin/env python3
"""Markdown tables of the membership-inference reports in this folder (stdlib only).

Usage: results/mia-fmnist/table.py K [PREFIX [SUFFIX]] > results/mia-fmnist/table-kK.md
Reads PREFIX{nonprivate,nonprivate-collective,eps8,eps8-collective}-kK.json and their .log
(wall time); PREFIX is empty for the issue's four conditions, "overfit-" for the supplement;
SUFFIX is "-sSEED" for a seed other than 0.
"""
import json
import re
import sys
from pathlib import Path

here = Path(__file__).parent
k = sys.argv[1] if len(sys.argv) > 1 else "16"
pre = sys.argv[2] if len(sys.argv) > 2 else ""
suf = sys.argv[3] if len(sys.argv) > 3 else ""
conds = [
    ("non-private, no collective", f"{pre}nonprivate-k{k}{suf}"),
    ("non-private, collective 1 %", f"{pre}nonprivate-collective-k{k}{suf}"),
    ("ε = 8, no collective", f"{pre}eps8-k{k}{suf}"),
    ("ε = 8, collective 1 %", f"{pre}eps8-collective-k{k}{suf}"),
]


ATTACKS = [("LiRA online", "auc_lira_online"), ("LiRA offline", "auc_lira_offline"), ("loss threshold", "auc_loss")]


def cell(r, key):
    a = r.get(key)
    if a is None:
        return "—"
    return f"{a:.4f} [{r[key + '_lo']:.4f}, {r[key + '_hi']:.4f}]"


def log_text(name):
    """The condition's .log (written by conditions.sh), or None before it ran."""
    log = here / f"{name}.log"
    return log.read_text() if log.exists() else None


def wall(name):
    t = log_text(name) or ""
    m = re.search(r"wall ([0-9.]+) s", t)
    if "terminated by signal" in t:
        return f"stopped after {float(m.group(1)):.0f} s" if m else "stopped"
    return f"{float(m.group(1)):.0f} s" if m else "not finished"


reports = {}
for label, name in conds:
    p = here / f"{name}.json"
    if p.exists():
        reports[name] = json.loads(p.read_text())

print(f"### {pre.rstrip('-') or 'main'}{suf}: K = {k} shadow models\n")
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
nn = next(iter(reports.values()))["non_members"] if reports else 0
print(f"AUC [95% DeLong interval over target records]; positives as named, negatives = the {nn:,} non-members.\n")
print("| condition | attack | all members | collective only | non-collective only |")
print("|---|---|---|---|---|")
for label, name in conds:
    r = reports.get(name)
    if r is None:
        continue
    for attack, key in ATTACKS:
        print(f"| {label} | {attack} | {cell(r, key)} | {cell(r, key + '_collective')} | {cell(r, key + '_non_collective')} |")

print()
print("Decomposition check, AUC_all vs (m_c·AUC_collective + (m − m_c)·AUC_non_collective)/m:\n")
for label, name in conds:
    r = reports.get(name)
    if r is None or r["collective_members"] == 0:
        continue
    m, mc = r["members"], r["collective_members"]
    for attack, key in ATTACKS:
        mix = (mc * r[key + "_collective"] + (m - mc) * r[key + "_non_collective"]) / m
        print(f"- {label}, {attack}: all {r[key]:.6f}, mixture {mix:.6f}")
print()
print("| condition | wall | user | load average at start (1, 5, 15 min) |")
print("|---|---|---|---|")
for label, name in conds:
    t = log_text(name)
    if t is None:
        continue
    w = re.search(r"wall ([0-9.]+) s, user ([0-9.]+) s", t)
    load = re.search(r"load ([0-9. ]+)", t)
    ws = f"{float(w.group(1)):.0f} s" if w else "not finished"
    if "terminated by signal" in t:
        ws = f"stopped after {ws}"
    us = f"{float(w.group(2)):.0f} s" if w else ""
    print(f"| {label} | {ws} | {us} | {load.group(1).strip() if load else ''} |")
