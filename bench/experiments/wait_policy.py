"""The MNIST training step under fastconv's OpenMP waiting default and under passive waiting.

    python bench/experiments/wait_policy.py [--busy] [--rounds 3] [--steps 300]
                                            [--spins 10000,100000]

Each setting runs in its own process (the OpenMP runtime reads it once, at load), alternating,
and prints the median step time of each run and the ratio of the medians. ``--busy`` keeps one
core busy with another process meanwhile, as on a loaded machine; ``--spins`` adds runs under
those GOMP_SPINCOUNT values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
import numpy as np
from fcbench import zoo
x, y = zoo.model_batch("A")
m = zoo.fastconv_model("A")
for _ in range(5):
    m.train_on_batch(x, y)
ts = []
for _ in range({steps}):
    t = time.perf_counter(); m.train_on_batch(x, y); ts.append(time.perf_counter() - t)
print(np.median(ts) * 1e3)
"""


def run(env_extra, steps):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    bench = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = CHILD.format(bench=bench, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    out.check_returncode()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="keep a core busy meanwhile")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--spins", default="", help="more GOMP_SPINCOUNT values, comma-separated")
    args = parser.parse_args()
    hog = None
    if args.busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        settings = {"default": {}, "passive": {"OMP_WAIT_POLICY": "passive"}}
        for count in filter(None, args.spins.split(",")):
            settings[f"spin {count}"] = {"GOMP_SPINCOUNT": count}
        results = {name: [] for name in settings}
        for _ in range(args.rounds):
            for name, extra in settings.items():
                results[name].append(run(extra, args.steps))
    finally:
        if hog is not None:
            hog.kill()
    for name, ms in results.items():
        print(f"{name:12s} step ms: " + ", ".join(f"{v:.2f}" for v in ms))
    ratio = statistics.median(results["passive"]) / statistics.median(results["default"])
    print(f"passive / default (medians): {ratio:.2f}" + (" (one core busy)" if args.busy else ""))


if __name__ == "__main__":
    main()
