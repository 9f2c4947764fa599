"""Ours against Opacus, interleaved: the step-time ratios of benches/README.md measured so that both
sides see the same machine state.

Timings on a shared machine drift by 20-50 % over minutes, so two benchmark runs one after the
other (benches/compare.sh) can put the two sides in different states. Here every side is a
long-lived server process (benches/dp_step.rs with DP_STEP_SERVE, benches/opacus_step.py --serve)
holding one workload and one mode, built and warmed up once. Each round asks every server in turn
(the order rotates from round to round) for one block of steps lasting about --seconds, with a
short pause before each block so that the previous process's OpenMP threads stop spinning. The
ratios are taken within a round, then their median and range over the rounds are reported.

Usage: .venv/bin/python benches/versus.py [--rounds 15] [--seconds 0.3] W1 [W2 W3 W4]
Needs `make bench-opacus` once (opacus in the venv). Prints one line per side and the ratios:
  ours DP / Opacus best DP   (goal <= 0.5; best = the faster of hooks and ghost in that round)
  ours DP / ours non-private (goal <= 1.5)
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_binary():
    """Path of the compiled benches/dp_step.rs (built here if needed)."""
    out = subprocess.run(["cargo", "bench", "--bench", "dp_step", "--no-run", "--message-format=json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "dp_step" and msg.get("executable"):
            return msg["executable"]
    sys.exit("versus.py: cargo did not report the dp_step bench executable")


class Server:
    def __init__(self, label, argv, env=None):
        self.label = label
        self.p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **(env or {})})
        line = self.p.stdout.readline().strip()
        if line != "ready":
            sys.exit(f"versus.py: {label} did not start (said {line!r})")
        self.k = 1
        self.times = []

    def block(self, k):
        self.p.stdin.write(f"{k}\n"); self.p.stdin.flush()
        return float(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close(); self.p.wait()


def median_range(v):
    return statistics.median(v), min(v), max(v)


def run(prefix, rounds, seconds, binary, python):
    servers = [Server("ours nonprivate", [binary], {"DP_STEP_SERVE": f"{prefix}:nonprivate"}),
               Server("ours ghost", [binary], {"DP_STEP_SERVE": f"{prefix}:ghost"})]
    for mode in ["nonprivate", "hooks", "ghost"]:
        servers.append(Server(f"opacus {mode}", [python, "benches/opacus_step.py", "--serve", prefix, mode]))
    by = {s.label: s for s in servers}
    # Block sizes: about `seconds` each, from two calibration blocks (the first single step can be
    # far off the steady state).
    for s in servers:
        t = s.block(1)
        t = s.block(max(1, round(0.3 * seconds / t)))
        s.k = max(1, round(seconds / t))
    ratios = {"ours DP / Opacus best DP": [], "ours DP / ours non-private": [], "Opacus best DP / Opacus non-private": []}
    for r in range(rounds):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        now = {}
        for s in order:
            time.sleep(0.05)
            now[s.label] = s.block(s.k)
            s.times.append(now[s.label])
        best = min(now["opacus hooks"], now["opacus ghost"])
        ratios["ours DP / Opacus best DP"].append(now["ours ghost"] / best)
        ratios["ours DP / ours non-private"].append(now["ours ghost"] / now["ours nonprivate"])
        ratios["Opacus best DP / Opacus non-private"].append(best / now["opacus nonprivate"])
    for s in servers:
        s.close()
    print(f"== {prefix}: {rounds} rounds, blocks of about {seconds} s")
    for s in servers:
        m, lo, hi = median_range(s.times)
        print(f"  {s.label:16} {m * 1e3:9.3f} ms/step  (range {lo * 1e3:.3f}-{hi * 1e3:.3f}, {s.k} steps a block)")
    for name, v in ratios.items():
        m, lo, hi = median_range(v)
        print(f"  {name:36} median {m:.2f}  (range {lo:.2f}-{hi:.2f})")
    goal = ratios["ours DP / Opacus best DP"]
    print(f"  rounds with ours DP / Opacus best DP <= 0.5: {sum(x <= 0.5 for x in goal)} of {len(goal)}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="+", help="workload prefixes: W1 W2 W3 W4 W5")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=0.3, help="target length of one block")
    a = ap.parse_args()
    binary = bench_binary()
    print(f"# {binary}\n# python {sys.executable}", flush=True)
    for w in a.workloads:
        run(w, a.rounds, a.seconds, binary, sys.executable)


if __name__ == "__main__":
    main()
