"""The first layer's conv + max pooling fused (the default) against the two passes, interleaved.

    python bench/experiments/first_layer_fusion.py [A|B] [--mode train|predict] [--rounds 7]

One process, two models with the same weights: one as built (the execution plan fuses), one with
``model.fuse = False`` (every layer on its own). Each round times a batch of steps of each, so both
see the same machine state. Prints the medians and their ratio (above 1: the fusion is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for fcbench
from fcbench import zoo  # noqa: E402


def fused_and_unfused(which):
    """{"fused": model, "two passes": the same model (same weights) with fusion off}."""
    fused, unfused = zoo.fastconv_model(which), zoo.fastconv_model(which)
    if not hasattr(fused, "fuse"):
        raise SystemExit("this fastconv's Model has no `fuse` attribute (the execution plan)")
    unfused.fuse = False  # before the first step: the plan is compiled then
    unfused.set_weights(fused.get_weights())
    return {"fused": fused, "two passes": unfused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("A", "B"), nargs="?", default="A")
    parser.add_argument("--mode", choices=("train", "predict"), default="train")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    x, y = zoo.model_batch(args.model)
    steps = {}
    for name, model in fused_and_unfused(args.model).items():
        if args.mode == "train":
            steps[name] = lambda m=model: m.train_on_batch(x, y)
        else:
            steps[name] = lambda m=model: m.predict_on_batch(x)
    n = (60 if args.model == "A" else 3) * (1 if args.mode == "train" else 3)
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            step()
            start = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - start) / n * 1e3)
    for name, ms in times.items():
        print(f"{args.model} {args.mode} {name:10s} median {statistics.median(ms):.3f} ms")
    ratio = statistics.median(times["two passes"]) / statistics.median(times["fused"])
    print(f"two passes / fused: {ratio:.3f}")


if __name__ == "__main__":
    main()
