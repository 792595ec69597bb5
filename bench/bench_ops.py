"""Each op of fastconv against naive NumPy, NumPy at its best and PyTorch, on the lecture's layers.

    python -m pytest bench/bench_ops.py --benchmark-only [--naive=small|all|none] [-k B.conv2]

One benchmark group per (layer, op): conv forward (with bias and ReLU), input gradient (dx),
weight gradient (dw, with the bias gradient); max pool forward/backward; dense forward/backward
(dx, dw, db together); ReLU forward/backward. ``extra_info`` holds the GFLOP of the op (for
pooling and ReLU: elements touched). The cases are fcbench.cases'; bench/report.py prints the
same comparisons as one table with GFLOP/s and percent of the machine's peak.
"""

from __future__ import annotations

import time

import pytest
from fcbench import cases
from fcbench.runtime import torch_or_none

IMPLS = ("fastconv", "fastconv-winograd", "numpy", "torch", "naive")

PARAMS = [
    pytest.param(kind, s, op, impl, id=f"{kind}-{s.model}.{s.name}-{op}-{impl}")
    for kind, s in cases.case_groups()
    for op in cases.OPS[kind]
    for impl in IMPLS
]

_cache: dict = {}


def _case(kind, s, op, torch):
    """The case of (layer, op); one layer's data (and tensors) kept alive at a time."""
    key = (kind, s, torch is not None)
    if key not in _cache:
        _cache.clear()
        _cache[key] = {c.op: c for c in cases.build_group(kind, s, torch)}
    return _cache[key][op]


@pytest.mark.parametrize("kind, shape, op, impl", PARAMS)
def test_op(benchmark, request, naive_mode, blas_threads, kind, shape, op, impl):
    if impl == "torch":
        request.getfixturevalue("torch_module")  # skips when PyTorch is not installed
    if impl == "naive" and (naive_mode == "none" or (naive_mode == "small" and not shape.small)):
        pytest.skip(f"naive NumPy skipped for {shape.id} (--naive={naive_mode})")
    case = _case(kind, shape, op, torch_or_none())
    benchmark.group = f"{kind} {op} {shape.id}"
    benchmark.extra_info.update(gflop=case.flops / 1e9, mbytes=case.nbytes / 1e6, impl=impl)
    time.sleep(0.15)  # idle OpenBLAS threads of the previous test spin ~0.1 s before sleeping
    if impl == "naive":
        blas_threads(1)  # its per-position matmuls are too small to share: 1 thread is its best
        benchmark.pedantic(case.naive, rounds=1, iterations=1, warmup_rounds=0)
    else:
        if impl not in case.impls:
            pytest.skip(f"{impl} does not apply to {op} of {shape.id}")
        fn = case.impls[impl]
        fn()  # warm-up: workspaces, oneDNN primitives
        benchmark(fn)
