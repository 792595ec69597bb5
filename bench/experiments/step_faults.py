"""A lecture model's steady training step with and without glibc heap tuning, and with the
memory plan switched off: ms per step, minor page faults per step, the buffer pool's size and
the peak RSS, each setting in fresh processes, alternating.

    python bench/experiments/step_faults.py [A|B] [--rounds 3] [--steps 5]

"tuned" sets MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (what bench/report.py used to set
for every framework); "no pool" replaces the model's buffer pool with fresh allocations.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import contextlib, resource, sys, time
import numpy as np
from fastconv.applications import build_cats_vs_dogs_model, build_mnist_model
which, steps, pool = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if not pool:
    import fastconv.ops._buffers as buffers
    buffers.BufferPool.active = lambda self: contextlib.nullcontext()
model = build_cats_vs_dogs_model() if which == "B" else build_mnist_model()
n, shape = (32, (180, 180, 3)) if which == "B" else (64, (28, 28, 1))
rng = np.random.default_rng(0)
x = (rng.random((n,) + shape) * 255).astype(np.float32)
y = rng.integers(0, 2, n)
for _ in range(2):
    model.train_on_batch(x, y)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
ms = (time.perf_counter() - start) / steps * 1e3
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(ms, faults, model._buffers.nbytes / 2**20, rss)
"""

TUNED = {"MALLOC_MMAP_THRESHOLD_": "10000000000", "MALLOC_TRIM_THRESHOLD_": "10000000000"}
SETTINGS = {"plain": ({}, "1"), "tuned": (TUNED, "1"), "no pool": ({}, "0")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", choices=("A", "B"), default="B")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args(argv)
    results = {name: [] for name in SETTINGS}
    for _ in range(a.rounds):
        for name, (extra, pool) in SETTINGS.items():
            env = {**os.environ, **extra}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, a.model, str(a.steps), pool],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append([float(v) for v in out.stdout.split()])
    for name, rows in results.items():
        ms, faults, pool_mib, rss = (statistics.median(col) for col in zip(*rows))
        print(
            f"{a.model} {name:8s}: {ms:7.1f} ms/step ({min(r[0] for r in rows):.1f}-"
            f"{max(r[0] for r in rows):.1f}), {faults:6.0f} faults/step, pool {pool_mib:4.0f} MiB, "
            f"peak RSS {rss:4.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
