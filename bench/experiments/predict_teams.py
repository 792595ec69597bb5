"""predict one batch at a time against two batches at once on teams of threads
(fastconv.models.batch_teams), alternating in one process.

    python bench/experiments/predict_teams.py [A|B] [--rounds 5] [--busy]

Prints img/s of ``predict`` per round for each (MNIST convnet: 3,200 images in batches of 64;
cats-vs-dogs: 192 in batches of 32), the medians, and the largest difference between the two
runs' predictions. ``--busy`` keeps one core busy with another process meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import fastconv
import numpy as np
from fastconv import applications
from fastconv.models import batch_teams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="A", choices=["A", "B"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--busy", action="store_true", help="keep a core busy meanwhile")
    args = parser.parse_args()
    fastconv.set_num_threads(2)
    rng = np.random.default_rng(0)
    if args.model == "A":
        model = applications.build_mnist_model(fastconv)
        x, batch = rng.random((3200, 28, 28, 1), dtype=np.float32), 64
    else:
        model = applications.build_cats_vs_dogs_model(fastconv)
        x, batch = (rng.random((192, 180, 180, 3)) * 255).astype(np.float32), 32
    outputs, rates = {}, {1: [], 2: []}
    for teams in (1, 2):  # warm-up: binds the shapes, auto measures its algorithms
        batch_teams.MAX_TEAMS = teams
        model.predict(x, batch_size=batch, verbose=0)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        for _ in range(args.rounds):
            for teams in (1, 2):
                batch_teams.MAX_TEAMS = teams
                start = time.perf_counter()
                outputs[teams] = model.predict(x, batch_size=batch, verbose=0)
                rates[teams].append(len(x) / (time.perf_counter() - start))
    finally:
        if hog is not None:
            hog.kill()
    for teams, label in ((1, "one batch at a time"), (2, "two teams")):
        cells = " ".join(f"{r:,.0f}" for r in rates[teams])
        print(f"{label:20s} img/s {cells}  median {statistics.median(rates[teams]):,.0f}")
    diff = float(np.abs(outputs[1] - outputs[2]).max())
    ratio = statistics.median(rates[2]) / statistics.median(rates[1])
    print(f"two teams / one at a time (medians): {ratio:.2f}; largest difference {diff:.1e}")


if __name__ == "__main__":
    main()
