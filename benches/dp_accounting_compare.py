#!/usr/bin/env python3
"""Time Google's dp_accounting PLD accountant against `crowdout account --method pld`.

Same setting for both: Poisson-subsampled Gaussian, q = 256/60000, sigma = 1.1, T = 10^4 steps,
delta = 1e-5, add/remove neighbouring, value_discretization_interval = 1e-4 (dp_accounting's
default, and ours), connect-the-dots pessimistic discretisation in both.

Usage (from the repository root, after `cargo build --release`):
    .venv/bin/python benches/dp_accounting_compare.py [--repeat 5]
Needs the pip package `dp-accounting` (0.6.0 was used). Prints epsilons, the best-of-N times
and the ratio (dp_accounting time / ours). Our time is measured two ways: inside the binary
(`elapsed_s_pld`, accounting only) and around the whole process (start-up included).
"""
import argparse
import json
import subprocess
import time

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant

Q, SIGMA, STEPS, DELTA = 256 / 60000, 1.1, 10_000, 1e-5


def dp_accounting_eps():
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(Q, dp_accounting.GaussianDpEvent(SIGMA)), STEPS)
    acc.compose(event)
    return acc.get_epsilon(DELTA)


def ours(binary):
    cmd = [binary, "account", "--sample-rate", repr(Q), "--noise-multiplier", repr(SIGMA),
           "--steps", str(STEPS), "--delta", repr(DELTA), "--method", "pld", "--json"]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    rec = json.loads(out)
    return rec["epsilon_pld"], rec["elapsed_s_pld"], wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--binary", default="target/release/crowdout")
    a = ap.parse_args()
    t_dp, t_in, t_wall = [], [], []
    for _ in range(a.repeat):
        t = time.perf_counter()
        e_dp = dp_accounting_eps()
        t_dp.append(time.perf_counter() - t)
        e_us, inside, wall = ours(a.binary)
        t_in.append(inside)
        t_wall.append(wall)
    print(f"setting: q={Q} sigma={SIGMA} T={STEPS} delta={DELTA}, discretization 1e-4")
    print(f"dp_accounting {dp_accounting.__version__ if hasattr(dp_accounting, '__version__') else ''}: "
          f"eps = {e_dp!r}, best {min(t_dp) * 1e3:.1f} ms")
    print(f"crowdout:      eps = {e_us!r}, best {min(t_in) * 1e3:.1f} ms inside, "
          f"{min(t_wall) * 1e3:.1f} ms whole process")
    print(f"relative difference in eps: {abs(e_us - e_dp) / e_dp:.2e}")
    print(f"ratio dp_accounting / crowdout: {min(t_dp) / min(t_in):.1f}x (accounting only), "
          f"{min(t_dp) / min(t_wall):.1f}x (whole process)")


if __name__ == "__main__":
    main()
