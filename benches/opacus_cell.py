"""One sweep cell of the reference Fashion-MNIST spec in PyTorch + Opacus, end to end, timed by phase.

The cell `benches/cell.py` compares with `crowdout train`: the full Fashion-MNIST training set
(60,000 images, pixels / 255, no standardisation), a collective of floor(α N) records drawn
uniformly from the non-target records that get a 3 × 3 patch of value 1 in the bottom-right
corner and the label y* = 0 (feature-label), the DP MNIST CNN (benches/opacus_step.py's `cnn`),
SGD with momentum, Poisson sampling at q = L / N through Opacus's DPDataLoader (its default for
`make_private`), σ calibrated by Opacus to ε at δ over the run's steps, per-sample clipping at C.
Evaluated as crowdout evaluates a cell: clean test accuracy, and the collective's success = the
share of the non-target test images, with the patch, predicted y*.

This is the standard way to write the cell with Opacus (the way its MNIST example trains), not a
tuned one: a TensorDataset behind Opacus's DataLoader, batch by batch in Python.

Run:  .venv/bin/python benches/opacus_cell.py [--epsilon 4] [--alpha 0.1] [--seed 0] [--seeds 1] [--json]
      (--alpha 0,0.1 --seeds 10: the 20 cells of a 10-seed grid, one after another)
      --nonprivate trains the same cell without Opacus (plain PyTorch, shuffled batches of L).
Prints one line per phase and, with --json, a JSON object per cell (phases in seconds).
"""
import argparse, gzip, json, os, struct, sys, time, warnings

from reference_cell import REFERENCE, add_cell_args

T_START = time.perf_counter()
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

warnings.filterwarnings("ignore")
T_IMPORT_TORCH = time.perf_counter() - T_START


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, 2, padding=3), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, 2), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def load(root):
    d = os.path.join(root, "fashion-mnist")
    x = torch.from_numpy(idx(os.path.join(d, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx(os.path.join(d, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    xt = torch.from_numpy(idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)
    yt = torch.from_numpy(idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    return x, y, xt, yt


def patch(x):
    x = x.clone()
    x[:, :, -3:, -3:] = 1.0
    return x


def plant(x, y, alpha, target, gen):
    """floor(α N) members uniformly from the non-target records, patched and relabelled."""
    x, y = x.clone(), y.clone()
    pool = torch.nonzero(y != target).squeeze(1)
    k = int(alpha * len(y))
    members = pool[torch.randperm(len(pool), generator=gen)[:k]]
    x[members] = patch(x[members])
    y[members] = target
    return x, y


def evaluate(model, xt, yt, target):
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).double().mean().item()
        nt = yt != target
        succ = (model(patch(xt[nt])).argmax(1) == target).double().mean().item()
    model.train()
    return acc, succ


def cell(args, seed, alpha, data):
    ph = {}
    t = time.perf_counter()
    x, y, xt, yt = data
    gen = torch.Generator().manual_seed(seed)
    xp, yp = plant(x, y, alpha, args.target, gen)
    ph["plant"] = time.perf_counter() - t

    t = time.perf_counter()
    torch.manual_seed(seed)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    ds = torch.utils.data.TensorDataset(xp, yp)
    n = len(ds)
    sigma = None
    if args.nonprivate:
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=gen)
        ph["calibrate"] = 0.0
    else:
        from opacus import PrivacyEngine
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, generator=gen)
        tc = time.perf_counter()
        pe = PrivacyEngine(accountant=args.accountant)
        model, opt, loader = pe.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=args.epsilon,
            target_delta=args.delta, epochs=args.epochs, max_grad_norm=args.max_grad_norm,
            grad_sample_mode=args.grad_sample_mode)
        sigma = opt.noise_multiplier
        ph["calibrate"] = time.perf_counter() - tc
    ph["build"] = time.perf_counter() - t - ph["calibrate"]

    t = time.perf_counter()
    steps = 0
    for _ in range(args.epochs):
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            steps += 1
    ph["train"] = time.perf_counter() - t

    t = time.perf_counter()
    eps = pe.get_epsilon(args.delta) if not args.nonprivate else None
    ph["account"] = time.perf_counter() - t
    t = time.perf_counter()
    acc, succ = evaluate(model, xt, yt, args.target)
    ph["evaluate"] = time.perf_counter() - t
    return dict(seed=seed, steps=steps, sigma=sigma, epsilon=eps, accuracy=acc, success=succ, phases=ph,
                train_ms_per_step=1000 * ph["train"] / max(steps, 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("CROWDOUT_DATA", "datasets/cache"))
    add_cell_args(p)
    p.add_argument("--alpha", default=str(REFERENCE["alpha"]), help="α, or a comma list: one cell per α and seed")
    p.add_argument("--accountant", default="rdp", choices=["rdp", "prv", "gdp"])
    p.add_argument("--grad-sample-mode", default="hooks", choices=["hooks", "ghost"])
    p.add_argument("--target", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="cells one after another, seeds seed..seed+K-1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nonprivate", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    if not args.nonprivate:
        import opacus  # noqa: F401  (its import time counts as load)
    data = load(args.data)
    load_s = time.perf_counter() - t
    first = True
    for s, alpha in [(s, float(a)) for s in range(args.seed, args.seed + args.seeds) for a in args.alpha.split(",")]:
        r = cell(args, s, alpha, data)
        r["alpha"] = alpha
        r["phases"]["load"] = load_s if first else 0.0
        first = False
        r["import_torch"] = T_IMPORT_TORCH
        r["process"] = time.perf_counter() - T_START
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            ph = ", ".join(f"{k} {v:.2f} s" for k, v in r["phases"].items())
            print(f"seed {s}, α {alpha}: {r['steps']} steps ({r['train_ms_per_step']:.1f} ms/step), σ = {r['sigma']}, "
                  f"ε = {r['epsilon']}, accuracy {r['accuracy']:.4f}, success {r['success']:.4f}; {ph}",
                  flush=True)


if __name__ == "__main__":
    main()
