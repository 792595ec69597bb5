"""VGG16 feature extraction (the chapter's pretrained section: ``conv_base.predict`` over
180x180 images, no top) in images/s: fastconv, PyTorch (the same graph, channels_last,
inference mode) and Keras 3 / TensorFlow, each in its own process, alternating rounds, medians.

    python bench/experiments/vgg16_features.py [--rounds 3] [--images 64]
        [--keras-python /opt/keras-venv/bin/python] [--threads 2]

Random weights (the speed does not depend on them); one warm-up batch of 32 is not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

COMMON = """
import os, sys, time
import numpy as np
images, threads = int(sys.argv[1]), int(sys.argv[2])
x = (np.random.default_rng(0).random((images, 180, 180, 3)) * 255).astype("float32")
"""

FASTCONV = (
    COMMON
    + """
import fastconv
from fastconv.applications import vgg16
fastconv.set_num_threads(threads)
m = vgg16.VGG16(weights=None, include_top=False, input_shape=(180, 180, 3))
m.predict(x[:32], batch_size=32, verbose=0)
t = time.perf_counter(); m.predict(x, batch_size=32, verbose=0)
print(images / (time.perf_counter() - t))
"""
)

TORCH = (
    COMMON
    + """
import torch, torch.nn as nn
torch.set_num_threads(threads)
layers, c = [], 3
for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
    for _ in range(convs):
        layers += [nn.Conv2d(c, filters, 3, padding=1), nn.ReLU(inplace=True)]
        c = filters
    layers.append(nn.MaxPool2d(2))
m = nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    m(xt[:32])
    t = time.perf_counter()
    for i in range(0, images, 32):
        m(xt[i : i + 32])
    print(images / (time.perf_counter() - t))
"""
)

KERAS = (
    COMMON
    + """
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
m = keras.applications.VGG16(weights=None, include_top=False, input_shape=(180, 180, 3))
m.predict(x[:32], batch_size=32, verbose=0)
t = time.perf_counter(); m.predict(x, batch_size=32, verbose=0)
print(images / (time.perf_counter() - t))
"""
)


def _run(python: str, code: str, images: int, threads: int, env: dict) -> float:
    out = subprocess.run(
        [python, "-c", code, str(images), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keras-python", default=None, help="a Python with keras + tensorflow-cpu")
    a = p.parse_args(argv)
    runs = {"fastconv": (sys.executable, FASTCONV), "pytorch": (sys.executable, TORCH)}
    if a.keras_python and os.path.exists(a.keras_python):
        runs["keras/tf"] = (a.keras_python, KERAS)
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    results: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(a.rounds):
        order = list(runs)[r % len(runs) :] + list(runs)[: r % len(runs)]
        for name in order:
            python, code = runs[name]
            results[name].append(_run(python, code, a.images, a.threads, env))
    best_peer = max(statistics.median(v) for k, v in results.items() if k != "fastconv")
    for name, values in results.items():
        print(
            f"{name}: {statistics.median(values):.2f} img/s "
            f"(range {min(values):.2f}-{max(values):.2f}, {a.rounds} rounds)"
        )
    print(f"fastconv / best peer: {statistics.median(results['fastconv']) / best_peer:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
