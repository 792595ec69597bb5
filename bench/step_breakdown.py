"""Where a training step's time goes: every fastconv kernel call of one lecture model's step, timed.

    python bench/step_breakdown.py [A|B] [--steps N]

Wraps fastconv.ops' core module so each kernel call is timed; prints per call site (kernel and
the shape of its first argument) the median time times the calls per step, the kernels' total
and the step's wall time (the difference is Python, allocation and the timing itself). Last, the
step with the compute kernels replaced by no-ops: what Python and allocation alone cost.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import pkgutil
import time

import fcbench  # noqa: F401  (first: PyTorch before fastconv, each keeps its OpenMP defaults)

# isort: split
import numpy as np
from fastconv import ops
from fcbench import zoo


class _StubbedCore:
    """The core module with its compute kernels (conv, pooling, dense, ReLU, optimizer updates)
    returning at once: outputs stay uninitialised, the Python around them runs as usual."""

    _STUBBED = ("conv2d", "max_pool", "avg_pool", "dense", "relu", "sgd", "rmsprop", "adam")

    def __init__(self, core):
        self._core = core

    def __getattr__(self, name):
        if name.startswith(self._STUBBED):
            return lambda *args, **kwargs: None
        return getattr(self._core, name)


def _step_ms(model, x, y, steps, after_warmup=lambda: None):
    for _ in range(2):
        model.train_on_batch(x, y)
    after_warmup()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps * 1e3


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


def _ops_modules():
    """fastconv.ops and its submodules (one per op family), those that call the core module."""
    modules = [ops]
    if hasattr(ops, "__path__"):
        modules += [
            importlib.import_module(f"{ops.__name__}.{m.name}")
            for m in pkgutil.iter_modules(ops.__path__)
        ]
    return [m for m in modules if hasattr(m, "_core")]


@contextlib.contextmanager
def _core_replaced(wrap):
    """Every ops module calls ``wrap(core)`` instead of the core module meanwhile."""
    modules = _ops_modules()
    core = modules[0]._core
    for m in modules:
        m._core = wrap(core)
    try:
        yield
    finally:
        for m in modules:
            m._core = core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("A", "B"), nargs="?", default="A")
    parser.add_argument("--steps", type=int, default=0, help="default: 200 (A), 5 (B)")
    args = parser.parse_args()
    steps = args.steps or (200 if args.model == "A" else 5)
    x, y = zoo.model_batch(args.model)
    model = zoo.fastconv_model(args.model)
    times = collections.defaultdict(list)
    with _core_replaced(lambda core: _TimedCore(core, times)):
        wall = _step_ms(model, x, y, steps, times.clear)
    with _core_replaced(_StubbedCore):
        python_only = _step_ms(model, x, y, 10 * steps)
    rows = sorted(
        ((np.median(v) * len(v) / steps * 1e3, k) for k, v in times.items()), reverse=True
    )
    for ms, (name, shape) in rows:
        print(f"{name:30s} {str(shape):22s} {ms:8.3f} ms/step")
    print(f"kernels {sum(r[0] for r in rows):.2f} ms of a {wall:.2f} ms step (wall)")
    print(f"the step with its compute kernels stubbed out: {python_only:.3f} ms")


if __name__ == "__main__":
    main()
