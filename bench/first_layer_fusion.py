"""The first layer's conv + max pooling fused (the default) against the two passes, interleaved.

    python bench/first_layer_fusion.py [A|B] [--mode train|predict] [--rounds 7]

One process; each round times a batch of steps with the fusion and a batch without it (the
layer hooks switched off), so both see the same machine state. Prints the medians and their
ratio (above 1: the fusion is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import references
from fastconv.layers.convolutional import Conv2D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("A", "B"), nargs="?", default="A")
    parser.add_argument("--mode", choices=("train", "predict"), default="train")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    x, y = references.model_batch(args.model)
    model = references.fastconv_model(args.model)
    if args.mode == "train":
        step = lambda: model.train_on_batch(x, y)  # noqa: E731
    else:
        step = lambda: model.predict_on_batch(x)  # noqa: E731
    steps = (60 if args.model == "A" else 3) * (1 if args.mode == "train" else 3)
    hooks = {"fused": (Conv2D.takes_max_pool, Conv2D.takes_max_pool_grad)}
    hooks["two passes"] = (lambda self, pool, x: False, lambda self, pool: False)
    times = {name: [] for name in hooks}
    for _ in range(args.rounds):
        for name, (forward_hook, backward_hook) in hooks.items():
            Conv2D.takes_max_pool, Conv2D.takes_max_pool_grad = forward_hook, backward_hook
            step()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    Conv2D.takes_max_pool, Conv2D.takes_max_pool_grad = hooks["fused"]
    for name, ms in times.items():
        print(f"{args.model} {args.mode} {name:10s} median {statistics.median(ms):.3f} ms")
    ratio = statistics.median(times["two passes"]) / statistics.median(times["fused"])
    print(f"two passes / fused: {ratio:.3f}")


if __name__ == "__main__":
    main()
