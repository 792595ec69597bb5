"""Where a batch of the MNIST convnet's inference goes: each step of its execution plan timed
alone (repeated), the steps in a chain as they ran before bound calls (each step's own forward,
its arguments checked every call), and the chain through the bound calls ``predict`` runs now
(``Layer.inference_call``); also the fused first layer (conv + 2x2 pool) alone.

    python bench/experiments/inference_chain.py [--threads 2] [--reps 300] [--rounds 3]

Medians of rounds, ms per batch of 64; the three chains alternate within each round. The gap
between "steps alone (sum)" and "steps in a chain" is the OpenMP worker falling asleep in the
Python between kernels (bench/experiments/predict_sleeps.py counts those sleeps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import fastconv
import numpy as np
from fastconv import applications, ops
from fastconv.ops._buffers import BufferPool


def per_call_ms(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    model = applications.build_mnist_model(fastconv)
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    plan = model._execution_plan()
    plan.predict_batch(x)  # binds the shape
    inputs = [x]
    for step in plan.steps:
        inputs.append(step.forward(inputs[-1], False, False))
        step.release()

    def steps_chain():
        h = x
        for step in plan.steps:
            h = step.forward(h, False, False)
            step.release()
        return h

    conv = model.layers[1]

    def first_layer():
        return ops.conv2d_max_pool(
            x, conv.kernel, conv.bias, activation="relu", keep_conv_output=False
        )

    results: dict[str, list[float]] = {}
    with BufferPool().active():  # the memory plan, as inside predict
        for _ in range(args.rounds):
            alone = sum(
                per_call_ms(lambda s=s, h=h: s.forward(h, False, False), args.reps)
                for s, h in zip(plan.steps, inputs)
            )
            for name, ms in (
                ("steps alone (sum)", alone),
                ("steps in a chain", per_call_ms(steps_chain, args.reps)),
                ("bound calls in a chain", per_call_ms(lambda: plan.predict_batch(x), args.reps)),
                ("first layer (conv + pool)", per_call_ms(first_layer, args.reps)),
            ):
                results.setdefault(name, []).append(ms)
    print(f"MNIST convnet, batch 64, {args.threads} threads, ms per call (median of rounds):")
    for name, values in results.items():
        cells = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:27s} {statistics.median(values):6.2f}   ({cells})")


if __name__ == "__main__":
    main()
