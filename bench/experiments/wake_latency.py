"""What a kernel call costs after the calling thread spent a while in Python: the OpenMP worker
may have gone to sleep, and waking it costs tens of microseconds on a virtual machine.

    python bench/experiments/wake_latency.py            # under fastconv's default GOMP_SPINCOUNT
    GOMP_SPINCOUNT=100000 python bench/experiments/wake_latency.py

Times a two-thread ReLU of 200,000 floats (about 10 us of work) after busy-waiting in Python for
each gap; prints the median call time per gap.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from fastconv import ops


def call_after(gap_s: float, x: np.ndarray, calls: int = 400) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        while time.perf_counter() - start < gap_s:
            pass
        t = time.perf_counter()
        ops.relu(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    x = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
    setting = os.environ.get("OMP_WAIT_POLICY") or f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
    gaps = (0, 10e-6, 20e-6, 40e-6, 100e-6, 1e-3)
    print(
        setting + ": " + ", ".join(f"gap {g * 1e6:.0f} us: {call_after(g, x):.1f} us" for g in gaps)
    )


if __name__ == "__main__":
    main()
