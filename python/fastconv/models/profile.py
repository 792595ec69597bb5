"""Where a step's time goes: per layer (or fused group) and pass, the time, its share of the
step, GFLOP/s, the share of this machine's measured FP32 peak, the convolution algorithm, and
the time spent outside the kernels (Python, allocation, waiting).

``Model.profile(x, y=None, steps=5)`` runs warm-up steps, then ``steps`` timed ones: training
steps when ``y`` is given (the weights, optimizer state and metrics are restored afterwards),
else inference. The plan tells a ``StepTimer`` when each step's pass
begins and ends; the kernels' time is read by timing every call into ``fastconv._core`` made
by the ops while the profile runs.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core, runtime
from .. import ops as ops_package
from ..layers.convolutional import Conv2D
from ..layers.core import Dense

__all__ = ["Profile", "ProfileRow", "profile_model", "measured_peak_gflops"]

_OPS_MODULES = ("conv", "pooling", "fully_connected", "elementwise", "losses", "updates")


@functools.cache
def measured_peak_gflops(isa: str, threads: int) -> float:
    """This machine's FP32 FMA peak with ``isa``'s vectors on ``threads`` threads (best of 3)."""
    return max(_core.fma_peak_gflops(isa, threads, 0.1) for _ in range(3))


class _TimedCore:
    """Stands in for ``_core`` inside the ops modules: every call is timed into ``seconds``."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._core, name)
        if not callable(fn):
            return fn

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


@contextlib.contextmanager
def _timed_kernels() -> Iterator[_TimedCore]:
    timed = _TimedCore(_core)
    modules = [getattr(ops_package, name) for name in _OPS_MODULES]
    saved = [m._core for m in modules]
    for m in modules:
        m._core = timed
    try:
        yield timed
    finally:
        for m, core in zip(modules, saved):
            m._core = core


def _flops(step: Any, batch: int, pass_name: str, need_dx: bool) -> float:
    """Multiply-adds x 2 of the step's convolutions and dense layers for one pass."""
    total = 0.0
    for layer in step.layers:
        if isinstance(layer, Conv2D):
            _, oh, ow, co = layer.output_shape
            kh, kw, ci, _ = layer.kernel.shape
            per_pass = 2.0 * batch * oh * ow * co * kh * kw * ci
        elif isinstance(layer, Dense):
            per_pass = 2.0 * batch * math.prod(layer.output_shape[1:]) * layer.kernel.shape[0]
        else:
            continue
        if pass_name == "forward":
            total += per_pass
        else:
            total += per_pass * (int(layer.trainable) + int(need_dx or layer is not step.layers[0]))
    return total


@dataclass
class ProfileRow:
    step: str  # the layers the step runs, "+"-joined when fused
    pass_name: str  # "forward" or "backward"
    seconds: float = 0.0  # per step, averaged over the timed steps
    kernel_seconds: float = 0.0
    flops: float = 0.0
    algorithm: str = "-"


@dataclass
class Profile:
    """The result of ``Model.profile``; ``str()`` is the table it prints."""

    model_name: str
    mode: str  # "training" or "inference"
    batch: int
    steps: int
    step_seconds: float  # wall time of one whole step
    kernel_seconds: float  # of it, inside fastconv's kernels
    peak_gflops: float
    isa: str
    threads: int
    rows: list[ProfileRow] = field(default_factory=list)

    @property
    def outside_kernel_seconds(self) -> float:
        return self.step_seconds - self.kernel_seconds

    def __str__(self) -> str:
        head = (
            f'Profile of "{self.model_name}": {self.mode}, batch {self.batch}, mean of '
            f"{self.steps} steps; {self.isa}, {self.threads} threads, measured FP32 peak "
            f"{self.peak_gflops:.0f} GFLOP/s"
        )
        cols = ("step", "pass", "ms", "share", "GFLOP/s", "% peak", "algorithm")
        body = []
        for r in self.rows:
            rate = r.flops / r.seconds * 1e-9 if r.flops and r.seconds > 0 else None
            body.append(
                (
                    r.step,
                    r.pass_name,
                    f"{r.seconds * 1e3:.2f}",
                    f"{r.seconds / self.step_seconds:.1%}",
                    f"{rate:.1f}" if rate else "-",
                    f"{rate / self.peak_gflops:.0%}" if rate else "-",
                    r.algorithm,
                )
            )
        in_steps = sum(r.seconds for r in self.rows)
        body.append(
            (
                "(loss, optimizer, Python)"
                if self.mode == "training"
                else "(Python between steps)",
                "",
                *_cells(self.step_seconds - in_steps, self.step_seconds),
            )
        )
        widths = [max(len(c), *(len(row[i]) for row in body)) for i, c in enumerate(cols)]
        lines = [head] + [
            "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [cols, *body]
        ]
        if any("winograd" in r.algorithm for r in self.rows):
            lines.append(
                "GFLOP/s count a direct convolution's multiply-adds; Winograd does 2.25x fewer, "
                "so its effective rate can pass the peak."
            )
        lines.append(
            f"Step {self.step_seconds * 1e3:.1f} ms: kernels {self.kernel_seconds * 1e3:.1f} ms "
            f"({self.kernel_seconds / self.step_seconds:.1%}), outside kernels "
            f"{self.outside_kernel_seconds * 1e3:.1f} ms "
            f"({self.outside_kernel_seconds / self.step_seconds:.1%})"
        )
        return "\n".join(lines)


def _cells(seconds: float, step_seconds: float) -> tuple[str, ...]:
    return (f"{seconds * 1e3:.2f}", f"{seconds / step_seconds:.1%}", "-", "-", "-")


class StepTimer:
    """The plan's observer while a profile runs: accumulates each step-pass's wall and kernel
    time (and FLOPs) into rows, in the order the passes first ran."""

    def __init__(self, kernels: _TimedCore, batch: int) -> None:
        self.kernels = kernels
        self.batch = batch
        self.rows: dict[tuple[int, str], ProfileRow] = {}
        self._started: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def begin(self, step: Any, pass_name: str, need_dx: bool = True) -> None:
        flops = _flops(step, self.batch, pass_name, need_dx)
        _core.last_conv_algorithms(True)  # from here on: this step's convolutions
        self._started = (time.perf_counter(), self.kernels.seconds, flops)

    def end(self, step: Any, pass_name: str) -> None:
        wall0, kernel0, flops = self._started
        key = (id(step), pass_name)
        row = self.rows.get(key)
        if row is None:
            name = "+".join(layer.name for layer in step.layers)
            row = self.rows[key] = ProfileRow(name, pass_name)
        row.seconds += time.perf_counter() - wall0
        row.kernel_seconds += self.kernels.seconds - kernel0
        row.flops += flops
        row.algorithm = _algorithms(step, _core.last_conv_algorithms(True))


_PASS_LABELS = {"forward": "fwd", "input_gradient": "dx", "weight_gradient": "dw"}


def _algorithms(step: Any, runs: list) -> str:
    """The convolution algorithms the step's pass ran, e.g. "dx:col2im dw:rowgemm"."""
    if runs:
        seen = dict.fromkeys(
            f"{_PASS_LABELS.get(r[0], r[0])}:{r[2]}" + ("+pool" if "pooled" in r[3] else "")
            for r in runs
        )
        return " ".join(seen)
    if any(isinstance(layer, Conv2D) for layer in step.layers):
        return "fused first layer"  # conv+pool passes have one algorithm each
    return "-"


@contextlib.contextmanager
def _training_state_kept(model: Any) -> Iterator[None]:
    """Profiled training steps leave the weights, the optimizer state and the metrics as they
    found them."""
    weights = model.get_weights()
    opt = model.optimizer
    iterations = opt.iterations
    slots = {key: tuple(s.copy() for s in state[1:]) for key, state in opt._state.items()}
    try:
        yield
    finally:
        model.set_weights(weights)
        opt.iterations = iterations
        for key in list(opt._state):
            if key not in slots:
                del opt._state[key]
            else:
                for live, saved in zip(opt._state[key][1:], slots[key]):
                    np.copyto(live, saved)
        model._reset_metrics()


def profile_model(model: Any, x: np.ndarray, y: Any = None, steps: int = 5, warmup: int = 2):
    """See the module docstring; ``Model.profile`` is the public entry point."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int; received {steps!r}")
    training = y is not None
    if training:
        model._assert_compiled()
        x, y = model._check_arrays(x, y)
    else:
        x, _ = model._check_arrays(x, None, need_y=False)
    x = np.ascontiguousarray(x, dtype=np.float32)

    def one_step() -> None:
        if training:
            model._train_step(x, y)
        else:
            model._infer(x)

    plan = model._execution_plan()
    kept = _training_state_kept(model) if training else contextlib.nullcontext()
    with kept, model._buffers.active():
        for _ in range(warmup):
            one_step()
        with _timed_kernels() as kernels:
            timer = StepTimer(kernels, len(x))
            plan.observer = timer
            try:
                start = time.perf_counter()
                for _ in range(steps):
                    one_step()
                wall = time.perf_counter() - start
            finally:
                plan.observer = None
    isa, threads = _core.get_isa(), runtime.get_num_threads()
    rows = list(timer.rows.values())
    for row in rows:
        row.seconds /= steps
        row.kernel_seconds /= steps
        row.flops /= steps
    return Profile(
        model_name=model.name,
        mode="training" if training else "inference",
        batch=len(x),
        steps=steps,
        step_seconds=wall / steps,
        kernel_seconds=kernels.seconds / steps,
        peak_gflops=measured_peak_gflops(isa, threads),
        isa=isa,
        threads=threads,
        rows=rows,
    )
