"""How often the OpenMP worker falls asleep during the MNIST convnet's ``predict``, and what that
costs, under fastconv's spin-wait default and other GOMP_SPINCOUNT values.

    python bench/experiments/predict_sleeps.py [--rounds 3] [--spins 7000,30000] [--busy]

Each setting runs in a process of its own (the OpenMP runtime reads it once, at load),
alternating; prints per run the voluntary context switches per batch of 64 (a thread that
blocked: a worker gone to sleep between kernels, or a thread waiting at a region's end) and
img/s of ``predict`` over 3,200 images. Waking a sleeping worker costs 50-120 us on a virtual
machine (wake_latency.py). ``--busy`` keeps one core busy with another process meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import resource, time
import numpy as np
import fastconv
from fastconv import applications
fastconv.set_num_threads(2)
model = applications.build_mnist_model(fastconv)
x = np.random.default_rng(0).random((3200, 28, 28, 1), dtype=np.float32)
model.predict(x, batch_size=64, verbose=0)
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(10):
    model.predict(x, batch_size=64, verbose=0)
took, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print((after.ru_nvcsw - before.ru_nvcsw) / 500, 32000 / took)
"""


def run(env_extra: dict[str, str]) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
    out.check_returncode()
    sleeps, rate = out.stdout.split()
    return float(sleeps), float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spins", default="7000,30000", help="GOMP_SPINCOUNT values to add")
    parser.add_argument("--busy", action="store_true", help="keep a core busy meanwhile")
    args = parser.parse_args()
    settings = {"default": {}}
    for count in filter(None, args.spins.split(",")):
        settings[f"spin {count}"] = {"GOMP_SPINCOUNT": count}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        results = {name: [] for name in settings}
        for _ in range(args.rounds):
            for name, extra in settings.items():
                results[name].append(run(extra))
    finally:
        if hog is not None:
            hog.kill()
    for name, runs in results.items():
        cells = ", ".join(f"{sleeps:.2f} sleeps/batch {rate:,.0f} img/s" for sleeps, rate in runs)
        print(f"{name:12s} {cells}")


if __name__ == "__main__":
    main()
