"""The main job over seeds: ``fastconv train mnist --seed S`` for every S, as a user runs it.

    python bench/seed_accuracy.py                      # seeds 0..9, the default recipe
    python bench/seed_accuracy.py --seeds 0-4 -- --constant-lr   # extra arguments go to the CLI

Each seed runs in a fresh process (the command line itself); the script prints each seed's test
accuracy and training time, then the minimum, the mean and whether every seed reached the bar
(``--bar``, 0.98 by default; exit status 1 if one did not).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

ACCURACY = re.compile(r"Test accuracy: ([0-9.]+)")
TRAINING = re.compile(r"\(([0-9.]+) s for")


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    return seeds


def run_seed(seed, extra):
    cmd = [sys.executable, "-m", "fastconv", "train", "mnist", "--seed", str(seed), *extra]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    acc, train = ACCURACY.search(r.stdout), TRAINING.search(r.stdout)
    if r.returncode != 0 or acc is None:
        raise RuntimeError(f"seed {seed}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return float(acc.group(1)), float(train.group(1)) if train else float("nan"), wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5 (default: 0-9)")
    parser.add_argument("--bar", type=float, default=0.98, help="least test accuracy (0.98)")
    parser.add_argument("extra", nargs="*", help="arguments passed to `fastconv train mnist`")
    args = parser.parse_args(argv)
    print(f"fastconv train mnist {' '.join(args.extra)} --seed S".replace("  ", " "))
    print("| seed | test accuracy | training s | wall s |\n| ---: | ---: | ---: | ---: |")
    accuracies = []
    for seed in parse_seeds(args.seeds):
        acc, train, wall = run_seed(seed, args.extra)
        accuracies.append(acc)
        print(f"| {seed} | {acc:.4f} | {train:.1f} | {wall:.1f} |", flush=True)
    ok = min(accuracies) >= args.bar
    print(
        f"min {min(accuracies):.4f}, mean {statistics.mean(accuracies):.4f}, "
        f"max {max(accuracies):.4f} over {len(accuracies)} seeds: "
        f"{'every seed' if ok else 'NOT every seed'} >= {args.bar}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
