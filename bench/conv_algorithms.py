"""Does "auto" pick a fast convolution algorithm on each lecture layer? And how accurate is each?

    python bench/conv_algorithms.py [--reps 5] [--layers A.conv2,B.conv3] [--errors] [--rates]

For every lecture layer (fcbench.shapes) and pass, each algorithm that can take it is forced and
timed (medians of interleaved repeats, after one warm-up call each); then "auto" is run afresh
(its cache cleared) and the script reports what it picked and how its pick's median compares with
the fastest (the issue asks for within 10%). --rates prints, per algorithm, the fastest call's
GFLOP/s (a direct convolution's multiply-adds, so Winograd's is an effective rate) and its share
of the FP32 peak fastconv measures (the best of three 0.2 s FMA loops). --errors prints each
algorithm's max |error| / max(1, max |reference|) against the float64 reference on the A layers
(the B layers' reference takes minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import fastconv  # noqa: E402
from fastconv import _core  # noqa: E402
from fcbench.shapes import CONV, conv_data  # noqa: E402

ARGS = ((1, 1), (1, 1), (0, 0))  # stride, dilation, pads: the lecture's layers are 'valid'


def _calls(s):
    x, k, bias, dy = conv_data(s)
    y = np.empty(s.y_shape, np.float32)
    dx = np.empty(s.x_shape, np.float32)
    dk = np.empty(s.kernel_shape, np.float32)
    db = np.empty(s.cout, np.float32)
    return {
        "forward": (lambda: _core.conv2d_forward(x, k, bias, y, *ARGS, True), x, k, y),
        "input_gradient": (lambda: _core.conv2d_backward_input(dy, k, dx, *ARGS), x, k, y),
        "weight_gradient": (lambda: _core.conv2d_backward_weight(x, dy, dk, db, *ARGS), x, k, y),
    }


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--layers", default="")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--rates", action="store_true")
    args = parser.parse_args()
    layers = [s for s in CONV if not args.layers or f"{s.model}.{s.name}" in args.layers]
    info = fastconv.info()
    print(f"isa {info['isa']}, {info['num_threads']} threads, medians of {args.reps} interleaved")
    peak = 0.0
    if args.rates:
        peak = max(_core.fma_peak_gflops(info["isa"], info["num_threads"], 0.2) for _ in range(3))
        print(f"measured FP32 peak {peak:.0f} GFLOP/s")
    worst = 0.0
    for s in layers:
        for pass_, (call, x, k, y) in _calls(s).items():
            if pass_ == "input_gradient" and s.name == "conv1":
                continue  # no model computes the first layer's input gradient
            reasons = _core.conv_algorithm_reasons(pass_, x, k, y, *ARGS)
            names = [n for n, why in reasons if why == ""]
            times = {n: [] for n in names}
            for n in names:  # warm-up: scratch buffers, page faults
                fastconv.set_conv_algorithm(n)
                call()
            for r in range(args.reps):
                for n in names if r % 2 == 0 else names[::-1]:
                    fastconv.set_conv_algorithm(n)
                    times[n].append(_time(call))
            med = {n: float(np.median(t)) * 1e3 for n, t in times.items()}
            fastconv.set_conv_algorithm("auto")
            _core.clear_conv_algorithm_choices()
            call()
            picked = _core.last_conv_algorithms()[-1][2]
            best = min(med.values())
            ratio = med[picked] / best
            worst = max(worst, ratio)
            cells = "  ".join(f"{n} {m:8.2f}" for n, m in med.items())
            print(
                f"{s.model}.{s.name:5s} {pass_:15s} {cells:60s} auto: {picked:11s} "
                f"{ratio:5.3f}x the fastest",
                flush=True,
            )
            if args.rates:
                flops = 2.0 * np.prod(y.shape) * np.prod(k.shape[:3])
                rates = {n: flops / min(t) / 1e9 for n, t in times.items()}
                print(
                    " " * 24
                    + "  ".join(f"{n} {r:.0f} GFLOP/s ({r / peak:.0%})" for n, r in rates.items()),
                    flush=True,
                )
    print(f"worst auto pick: {worst:.3f}x the fastest median")
    if args.errors:
        _errors([s for s in layers if s.model == "A"])


def _errors(layers) -> None:
    import reference as ref

    print("max |error| / max(1, max |reference|) against float64, forced algorithm")
    for s in layers:
        x, k, bias, dy = conv_data(s)
        expected = {
            "forward": np.maximum(ref.conv2d(x, k, bias), 0.0),
            **dict(zip(("input_gradient", "weight_gradient"), ref.conv2d_grad(x, k, dy)[:2])),
        }
        for pass_, (_, xx, kk, y) in _calls(s).items():
            for n, why in _core.conv_algorithm_reasons(pass_, xx, kk, y, *ARGS):
                if why:
                    continue
                fastconv.set_conv_algorithm(n)
                err = ref.rel_err(_run(pass_, x, k, bias, dy), expected[pass_])
                print(f"{s.model}.{s.name:5s} {pass_:15s} {n:11s} {err:.2e}")
    fastconv.set_conv_algorithm("auto")


def _run(pass_, x, k, bias, dy):
    if pass_ == "forward":
        return fastconv.ops.conv2d(x, k, bias, activation="relu")
    return fastconv.ops.conv2d_grad(x, k, dy)[0 if pass_ == "input_gradient" else 1]


if __name__ == "__main__":
    main()
