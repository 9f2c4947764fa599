"""End-to-end bench of one sweep cell: `crowdout train` against the same cell in PyTorch + Opacus.

The reference cell (issue 19): the full Fashion-MNIST training set, the DP MNIST CNN, 3 epochs,
SGD + momentum 0.9, lr 0.05, expected batch L = 256 with Poisson sampling, ε = 4 at δ = 1e-5
(σ calibrated by each side's RDP accountant), C = 1, a 3 × 3 patch collective → class 0 at
α = 10 %, 2 threads. Each round runs, in an order that rotates from round to round,
  ours DP          `crowdout train ... --dp --target-epsilon 4`
  ours non-private `crowdout train ...` (the same cell without DP)
  Opacus DP        `benches/opacus_cell.py` (Opacus's DPDataLoader, make_private_with_epsilon)
as fresh processes, and times each from start to exit (what a user waits for: process start,
library loading and data reading included). The ratios are taken within a round, so that the
machine's drift over minutes cancels, and the medians over rounds are printed.

Our time per phase comes from the run record's `phases` (data = load + plant, steps = train,
evaluation, accounting = calibrate + account, other = the process's wall time minus those: process
start, libtorch loading, the model's construction, writing the record). Opacus's the same way from
its JSON line (its `other` includes `import torch`).

Run:  .venv/bin/python benches/cell.py [--rounds 5] [--opacus-mode hooks|ghost]
      make bench-cell
The last line is `cell ratio (ours DP / Opacus DP): R`, R the median over rounds.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

from reference_cell import REFERENCE, add_cell_args

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ours_cmd(a, dp, out):
    cmd = [a.crowdout, "train", "--dataset", "fashion-mnist", "--model", "cnn", "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--momentum", str(a.momentum),
           "--delta", str(a.delta), "--max-grad-norm", str(a.max_grad_norm),
           "--collective", f"alpha={a.alpha},target=0,trigger=patch:size=3:pos=br:value=1",
           "--seed", str(a.seed), "--threads", str(a.threads), "--quiet", "--out", out]
    if dp:
        cmd += ["--dp", "--target-epsilon", str(a.epsilon), "--accountant", "rdp"]
    return cmd


def opacus_cmd(a):
    return [a.python, os.path.join(HERE, "opacus_cell.py"), "--json", "--epochs", str(a.epochs),
            "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--momentum", str(a.momentum),
            "--epsilon", str(a.epsilon), "--delta", str(a.delta), "--max-grad-norm", str(a.max_grad_norm),
            "--alpha", str(a.alpha), "--seed", str(a.seed), "--threads", str(a.threads),
            "--accountant", "rdp", "--grad-sample-mode", a.opacus_mode]


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return wall, p.stdout


def grouped(ph, wall):
    """A side's phases (both name them as the run record does) grouped as the bench reports them;
    `other` is the process's wall time minus the phases it measured."""
    phases = dict(data=ph["load"] + ph["plant"], steps=ph["train"], evaluation=ph["evaluate"],
                  accounting=ph["calibrate"] + ph["account"])
    phases["other"] = wall - sum(phases.values())
    return phases


def ours(a, dp, tmp):
    out = os.path.join(tmp, "dp.json" if dp else "np.json")
    wall, _ = timed(ours_cmd(a, dp, out))
    with open(out) as f:
        r = json.load(f)
    acc = r["clean_accuracy"]["rate"]
    succ = r["success"]["per_collective"][0]["non_target"]["rate"]
    return dict(wall=wall, phases=grouped(r["phases"], wall), steps=r["steps"], accuracy=acc, success=succ)


def opacus(a):
    wall, out = timed(opacus_cmd(a))
    r = json.loads(out.strip().splitlines()[-1])
    return dict(wall=wall, phases=grouped(r["phases"], wall), steps=r["steps"], accuracy=r["accuracy"],
                success=r["success"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--crowdout", default=os.path.join(ROOT, "target", "release", "crowdout"))
    p.add_argument("--python", default=sys.executable)
    add_cell_args(p)
    p.add_argument("--alpha", type=float, default=REFERENCE["alpha"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--opacus-mode", default="hooks", choices=["hooks", "ghost"],
                   help="Opacus's grad sample mode (hooks is the faster of the two on this CNN)")
    a = p.parse_args()
    if not os.path.exists(a.crowdout):
        sys.exit(f"{a.crowdout} not found: build it first (make build)")
    sides = [("ours DP", lambda tmp: ours(a, True, tmp)), ("ours non-private", lambda tmp: ours(a, False, tmp)),
             ("Opacus DP", lambda tmp: opacus(a))]
    res = {name: [] for name, _ in sides}
    print(f"reference cell: fashion-mnist, cnn, {a.epochs} epochs, SGD m{a.momentum} lr {a.lr}, L = {a.batch_size}, "
          f"ε = {a.epsilon} at δ = {a.delta}, C = {a.max_grad_norm}, α = {a.alpha}, {a.threads} threads, "
          f"Opacus {a.opacus_mode}; {a.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = sides[r % 3:] + sides[:r % 3]
            line = []
            for name, run in order:
                out = run(tmp)
                res[name].append(out)
                line.append(f"{name} {out['wall']:.2f} s")
            dp, np_, op = res["ours DP"][-1], res["ours non-private"][-1], res["Opacus DP"][-1]
            print(f"round {r + 1}: " + ", ".join(line) +
                  f"; ours DP / Opacus DP {dp['wall'] / op['wall']:.3f}, ours DP / ours non-private "
                  f"{dp['wall'] / np_['wall']:.3f}", flush=True)
    med = statistics.median
    print()
    for name, _ in sides:
        rs = res[name]
        ph = {k: med(x["phases"][k] for x in rs) for k in rs[0]["phases"]}
        print(f"{name:17s} wall {med(x['wall'] for x in rs):6.2f} s (range {min(x['wall'] for x in rs):.2f}–"
              f"{max(x['wall'] for x in rs):.2f}); " + ", ".join(f"{k} {v:.2f} s" for k, v in ph.items()) +
              f"; {rs[0]['steps']} steps, {1000 * med(x['phases']['steps'] / x['steps'] for x in rs):.2f} ms/step"
              f"; accuracy {med(x['accuracy'] for x in rs):.4f}, success {med(x['success'] for x in rs):.4f}")
    ratio = [d["wall"] / o["wall"] for d, o in zip(res["ours DP"], res["Opacus DP"])]
    own = [d["wall"] / n["wall"] for d, n in zip(res["ours DP"], res["ours non-private"])]
    steps = [d["phases"]["steps"] / o["phases"]["steps"] for d, o in zip(res["ours DP"], res["Opacus DP"])]
    print(f"steps-phase ratio (ours DP / Opacus DP): {med(steps):.3f} (range {min(steps):.3f}–{max(steps):.3f})")
    print(f"cell ratio (ours DP / ours non-private): {med(own):.3f} (range {min(own):.3f}–{max(own):.3f})")
    print(f"cell ratio (ours DP / Opacus DP): {med(ratio):.3f}")


if __name__ == "__main__":
    main()
