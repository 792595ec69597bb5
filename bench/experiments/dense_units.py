"""Dense layers with few units: forward and backward time of the kernel as the unit count grows
(the dot-product path below fastconv's threshold, the packed GEMM above it).

    python bench/experiments/dense_units.py [--threads 1,2] [--repeats 15]

Medians of interleaved samples (fcbench.timing) of ``_core.dense_forward`` / ``dense_backward``
on random data, for the MNIST head (64 x 1152 -> 10), the cats-vs-dogs head (32 x 12544 -> 1),
widths between, and wider layers on the packed GEMM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import fastconv
import numpy as np
from fastconv import _core

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for fcbench
from fcbench.timing import median, time_interleaved  # noqa: E402

CASES = [
    (64, 1152, 10),
    (64, 1152, 16),
    (64, 1152, 32),
    (64, 1152, 64),
    (64, 1152, 65),
    (64, 1152, 128),
    (32, 12544, 1),
    (32, 12544, 16),
    (32, 8192, 256),  # a head on VGG16's 4x4x512 features (fastconv.applications)
    (256, 1024, 1024),
]


def time_case(batch: int, inputs: int, units: int, repeats: int, rng) -> tuple[float, float]:
    """(forward us, backward us) of one dense layer shape."""
    x = rng.random((batch, inputs), dtype=np.float32)
    kernel = rng.random((inputs, units), dtype=np.float32)
    bias = np.zeros(units, np.float32)
    y = np.empty((batch, units), np.float32)
    dy = rng.random((batch, units), dtype=np.float32)
    dx, dk, db = np.empty_like(x), np.empty_like(kernel), np.empty_like(bias)
    samples = time_interleaved(
        {
            "forward": lambda: _core.dense_forward(x, kernel, bias, y, False),
            "backward": lambda: _core.dense_backward(x, kernel, dy, dx, dk, db),
        },
        repeats,
        min_time=0.002,
    )
    return median(samples["forward"]) * 1e6, median(samples["backward"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"isa {fastconv.info()['isa']}")
    for threads in map(int, args.threads.split(",")):
        fastconv.set_num_threads(threads)
        for batch, inputs, units in CASES:
            forward, backward = time_case(batch, inputs, units, args.repeats, rng)
            gflops = 2 * batch * inputs * units / forward / 1e3
            print(
                f"{threads} thread(s) {batch:3d} x {inputs:5d} -> {units:3d}: forward "
                f"{forward:7.1f} us ({gflops:5.1f} GFLOP/s), backward {backward:7.1f} us"
            )


if __name__ == "__main__":
    main()
