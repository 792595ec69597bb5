"""Time the visualisations on the lecture's 180x180 cats-vs-dogs convnet (random weights: the
time does not depend on them): Grad-CAM over 32 images, and one filter-pattern ascent step with
and without the weight gradients (the layers frozen, as fastconv.visualize runs it, or not).

    python bench/experiments/visualize_timing.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import fastconv
import numpy as np
from fastconv import visualize
from fastconv.applications import cats_vs_dogs_convnet
from fastconv.visualize.gradients import _filter_objective


def best_of(fn, repeats):
    fn()  # warm-up: plans compiled, buffers and kernel choices made
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"threads: {fastconv.get_num_threads()}")
    model = cats_vs_dogs_convnet()
    x = np.random.default_rng(0).uniform(0, 255, (32, 180, 180, 3)).astype(np.float32)
    rows = [
        ("grad_cam, 32 images", lambda: visualize.grad_cam(model, x)),
        ("predict, 32 images (forward only)", lambda: model.predict(x, verbose=0)),
    ]
    convs = [layer.name for layer in model.layers if isinstance(layer, fastconv.layers.Conv2D)]
    image = x[:1]
    for layer_name in (convs[0], convs[2], convs[4]):
        objective = _filter_objective(model, layer_name, 0)
        plan = fastconv.Model(model.input, model.get_layer(layer_name).output)._execution_plan()

        def unfrozen_step(plan=plan):
            # the same forward and backward with the layers trainable: weight gradients made
            y = plan.forward(image, training=False, keep_tape=True)
            plan.backward(np.full_like(y, 1.0 / y[..., 0].size), need_dx=True)

        rows.append((f"filter step to {layer_name}, frozen", lambda o=objective: o(image)))
        rows.append((f"filter step to {layer_name}, weight grads too", unfrozen_step))
    for label, fn in rows:
        best, median = best_of(fn, args.repeats)
        print(f"{label:48s} best {best * 1e3:8.1f} ms   median {median * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
