"""ONNX Runtime's MNIST-convnet inference with its idle workers sleeping (as bench/user_path.py
runs it) and spinning (its default), each in a fresh process, alternating.

    python bench/experiments/ort_spinning.py [--rounds 3]

The graph is the lecture's MNIST convnet built from a fastconv model's weights
(fcbench.baselines.onnx_rt); 3,200 random images in batches of 64, 2 threads; each process
prints its best of 3 timed passes after a warm-up pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = str(Path(__file__).resolve().parents[1])
CHILD = r"""
import sys, time
import numpy as np
from fcbench.baselines.onnx_rt import ort_session
session = ort_session(sys.argv[1], 2, spinning=sys.argv[2] == "1")
x = np.random.default_rng(0).random((3200, 28, 28, 1), dtype=np.float32)
def run():
    for i in range(0, len(x), 64):
        session.run(None, {"x": x[i : i + 64]})
run()
best = 1e9
for _ in range(3):
    t0 = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - t0)
print(len(x) / best)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, BENCH)
    from fastconv import applications
    from fcbench.baselines.onnx_rt import save_onnx

    env = {**os.environ, "FCBENCH_SOLO": "1", "PYTHONPATH": BENCH}
    results = {"sleeping": [], "spinning": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = save_onnx("A", applications.build_mnist_model().get_weights(), f"{tmp}/A.onnx")
        for _ in range(args.rounds):
            for name, flag in (("sleeping", "0"), ("spinning", "1")):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, path, flag],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                results[name].append(float(out.stdout.split()[-1]))
    for name, rates in results.items():
        shown = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{name}: {shown} img/s; median {statistics.median(rates):,.0f}")


if __name__ == "__main__":
    main()
