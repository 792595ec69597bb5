"""Timing: implementations interleaved round-robin, the median of the repeats; a capped timer for
the naive loops.

Idle OpenBLAS threads spin about 0.1 s after a call and OpenMP threads a few ms; so that they
never steal the cores of the implementation timed next, each sample starts after an untimed pause
(0.15 s after NumPy, 5 ms otherwise).
"""

from __future__ import annotations

import gc
import statistics
import time


def time_interleaved(fns, repeats, min_time, warmup=2, gap=0.005, blas_gap=0.15):
    """{name: [seconds per call] x repeats}: round-robin over fns, the order rotated each repeat.

    Each sample times a loop of calls at least ``min_time`` long. An untimed sleep before each
    sample lets the previous implementation's spinning worker threads go idle, so they do not
    steal the cores: ``blas_gap`` after NumPy (OpenBLAS spins for about 2^28 cycles), ``gap``
    otherwise.
    """
    names = list(fns)
    loops = {}
    for name in names:
        fn = fns[name]
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        loops[name] = max(1, int(min_time / max(one, 1e-7)))
    samples = {name: [] for name in names}
    previous = names[-1]
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn, n = fns[name], loops[name]
                time.sleep(blas_gap if previous == "numpy" else gap)
                previous = name
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n)
    finally:
        gc.enable()
    return samples


def time_naive(fn_rows, total_rows, cap):
    """(seconds for the whole layer, estimated?) of a naive loop, capped at about `cap` s.

    ``fn_rows(rows)`` runs the first ``rows`` outer iterations (None: all). Where the whole layer
    would take longer than ``cap``, the first rows are timed and the time extrapolated to all
    rows (every row costs the same)."""
    time.sleep(0.15)
    fn_rows(1)
    t0 = time.perf_counter()
    fn_rows(1)
    per_row = time.perf_counter() - t0
    if per_row * total_rows <= cap:
        runs = 3 if per_row * total_rows * 3 <= cap else 1
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn_rows(None)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), False
    rows = max(1, min(total_rows, int(cap / per_row)))
    t0 = time.perf_counter()
    fn_rows(rows)
    return (time.perf_counter() - t0) * total_rows / rows, True


def median(xs):
    return statistics.median(xs) if xs else None


def medians(samples):
    """{name: median seconds} of time_interleaved's samples."""
    return {k: median(v) for k, v in samples.items()}
