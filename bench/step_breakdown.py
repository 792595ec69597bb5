"""Where a training step's time goes: every fastconv kernel call of one lecture model's step, timed.

    python bench/step_breakdown.py [A|B] [--steps N]

Wraps fastconv.ops' core module so each kernel call is timed; prints per call site (kernel and
the shape of its first argument) the median time times the calls per step, the kernels' total
and the step's wall time (the difference is Python, allocation and the timing itself).
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import references
from fastconv import ops


class _TimedCore:
    def __init__(self, core, times):
        self._core, self._times = core, times

    def __getattr__(self, name):
        fn = getattr(self._core, name)
        if not callable(fn):
            return fn

        def timed(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            key = (name, getattr(args[0], "shape", None) if args else None)
            self._times[key].append(time.perf_counter() - t)
            return out

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("A", "B"), nargs="?", default="A")
    parser.add_argument("--steps", type=int, default=0, help="default: 200 (A), 5 (B)")
    args = parser.parse_args()
    steps = args.steps or (200 if args.model == "A" else 5)
    x, y = references.model_batch(args.model)
    model = references.fastconv_model(args.model)
    times = collections.defaultdict(list)
    core = ops._core
    ops._core = _TimedCore(core, times)
    try:
        for _ in range(2):
            model.train_on_batch(x, y)
        times.clear()
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        wall = (time.perf_counter() - start) / steps * 1e3
    finally:
        ops._core = core
    rows = sorted(
        ((np.median(v) * len(v) / steps * 1e3, k) for k, v in times.items()), reverse=True
    )
    for ms, (name, shape) in rows:
        print(f"{name:30s} {str(shape):22s} {ms:8.3f} ms/step")
    print(f"kernels {sum(r[0] for r in rows):.2f} ms of a {wall:.2f} ms step (wall)")


if __name__ == "__main__":
    main()
