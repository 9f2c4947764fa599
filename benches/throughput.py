"""Sweep throughput: cells per hour on a seeded grid of the reference cell, ours against Opacus.

The grid: the reference Fashion-MNIST cell of benches/cell.py (full data, DP MNIST CNN, 3 epochs,
SGD + momentum 0.9, lr 0.05, L = 256, ε = 4 at δ = 1e-5 by the RDP accountant, C = 1, the 3 × 3
patch collective → 0) at α ∈ {0, 10 %} × K seeds: 2K cells, each a full training. (α = 0 is the
line's no-collective baseline, which `crowdout sweep` trains once and shares with the α = 10 %
cell of the same seed, so both sides train 2K models.)

- Ours: `crowdout sweep` of that grid as a spec, `--jobs J --torch-threads T` (default 2 × 1: the
  way a sweep runs on 2 cores), one process.
- Opacus: `benches/opacus_cell.py --alpha 0,0.1 --seeds K`: the same 2K cells one after another in
  one process with 2 threads (import and data loading paid once).

Each side is one process, timed from start to exit; its peak resident memory is the child's
maximum resident set size as GNU time reports it (`/usr/bin/time -f %M`). Memory per cell = peak / cells in flight (J for ours, 1 for Opacus).

Run:  .venv/bin/python benches/throughput.py [--seeds 10] [--jobs 2 --torch-threads 1]
      make bench-throughput
The last line is `throughput ratio (ours / Opacus cells per hour): R`.
"""
import argparse, csv, os, subprocess, sys, tempfile, time

from reference_cell import REFERENCE

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SPEC = """name = "throughput"
[grid]
dataset = ["fashion-mnist"]
model = ["cnn"]
collectives = [{{ name = "patch3-br-to-0", spec = "trigger=patch:size=3:pos=br:value=1,target=0,strategy=feature-label" }}]
alpha = [0.0, {alpha}]
privacy = ["eps={eps}"]
clip = [{max_grad_norm}]
seed = [{seeds}]

[train]
epochs = {epochs}
batch_size = {batch_size}
lr = {lr}
momentum = {momentum}
delta = {delta}
accountant = "rdp"
"""


def measured(cmd):
    """Run `cmd` to completion under GNU time: (wall seconds, peak RSS in MiB, stdout); exit on failure."""
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1024, proc.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epsilon", type=float, default=REFERENCE["epsilon"])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--crowdout", default=os.path.join(ROOT, "target", "release", "crowdout"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--opacus-mode", default="hooks", choices=["hooks", "ghost"])
    a = p.parse_args()
    cells = 2 * a.seeds
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "throughput.toml")
        with open(spec, "w") as f:
            f.write(SPEC.format(**{**REFERENCE, "eps": a.epsilon}, seeds=", ".join(str(s) for s in range(a.seeds))))
        out = os.path.join(tmp, "out")
        ours_wall, ours_rss, _ = measured([a.crowdout, "sweep", spec, "--out", out, "--jobs", str(a.jobs),
                                           "--torch-threads", str(a.torch_threads), "--no-progress"])
        with open(os.path.join(out, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        if len(rows) != cells:
            sys.exit(f"the sweep wrote {len(rows)} rows, expected {cells}")
        op_wall, op_rss, op_out = measured(
            [a.python, os.path.join(HERE, "opacus_cell.py"), "--json", "--alpha", f"0,{REFERENCE['alpha']}",
             "--seeds", str(a.seeds), "--epsilon", str(a.epsilon), "--accountant", "rdp",
             "--grad-sample-mode", a.opacus_mode])
        op_cells = len([l for l in op_out.splitlines() if l.startswith("{")])
        if op_cells != cells:
            sys.exit(f"Opacus ran {op_cells} cells, expected {cells}")
    ours_cph, op_cph = 3600 * cells / ours_wall, 3600 * cells / op_wall
    print(f"grid: {a.seeds} seeds × α ∈ {{0, {REFERENCE['alpha']}}} = {cells} cells (reference Fashion-MNIST cell, ε = {a.epsilon})")
    print(f"ours   `crowdout sweep --jobs {a.jobs} --torch-threads {a.torch_threads}`: {ours_wall:.1f} s, "
          f"{ours_cph:.0f} cells/hour, peak RSS {ours_rss:.0f} MiB ({ours_rss / a.jobs:.0f} MiB per cell in flight)")
    print(f"Opacus one cell after another, 2 threads ({a.opacus_mode}): {op_wall:.1f} s, {op_cph:.0f} cells/hour, "
          f"peak RSS {op_rss:.0f} MiB")
    print(f"throughput ratio (ours / Opacus cells per hour): {ours_cph / op_cph:.2f}")


if __name__ == "__main__":
    main()
