"""Does the convolution algorithm change what the cats-vs-dogs model learns? The lecture's
180x180 model trained by `fastconv train cats-vs-dogs` on a generated Kaggle-layout set, once per
setting and seed, each in a fresh process: test accuracy side by side.

    python bench/cats_vs_dogs_accuracy.py [--per-class 250] [--epochs 4] [--seeds 0,1]
        [--settings deterministic,auto] [--noise 90] [--contrast 0.1]

The images are tests/kaggle_images.py's (a warm picture with a disc for a cat, a cool one with a
bar for a dog), their contrast around mid-grey scaled by --contrast, with Gaussian noise of
standard deviation --noise and a random brightness shift added, so that the classes are not
trivially separable. make-subset splits each class 60/20/20.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from fastconv._cli_subset import make_subset
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from kaggle_images import animal_image  # noqa: E402


def make_noisy_kaggle_train(
    directory: str, per_class: int, noise: float, contrast: float, seed: int = 0
) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for kind in ("cat", "dog"):
        for i in range(per_class):
            size = tuple(int(s) for s in rng.integers(60, 160, 2))
            arr = np.asarray(animal_image(kind, rng, size), np.float32)
            arr = 128 + contrast * (arr - 128)
            arr = arr + rng.normal(0, noise, arr.shape) + rng.normal(0, 40)
            image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
            image.save(os.path.join(directory, f"{kind}.{i}.jpg"))


def test_accuracy(data_dir: str, setting: str, seed: int, epochs: int) -> float:
    cmd = [sys.executable, "-m", "fastconv.cli", "train", "cats-vs-dogs", data_dir]
    cmd += ["--epochs", str(epochs), "--seed", str(seed), "--conv-algorithm", setting]
    # In the data's folder: the command keeps its best checkpoint (best.keras) where it runs.
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=os.path.dirname(data_dir)
    ).stdout
    line = next(s for s in out.splitlines() if s.startswith("Test accuracy:"))
    return float(line.split()[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--settings", default="deterministic,auto")
    parser.add_argument("--noise", type=float, default=90.0)
    parser.add_argument("--contrast", type=float, default=0.1)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        original, base = os.path.join(tmp, "train"), os.path.join(tmp, "small")
        make_noisy_kaggle_train(original, args.per_class, args.noise, args.contrast)
        n = args.per_class
        split = [str(n * 3 // 5), str(n // 5), str(n - n * 3 // 5 - n // 5)]
        make_subset(original, base, *(int(k) for k in split))
        print(f"{2 * n} images (train/validation/test per class {'/'.join(split)}), contrast "
              f"{args.contrast}, noise {args.noise}, {args.epochs} epochs, batch 32")  # fmt: skip
        for setting in settings:
            accuracies = [test_accuracy(base, setting, seed, args.epochs) for seed in seeds]
            print(f"{setting:14s} test accuracy per seed {seeds}: {accuracies}, median "
                  f"{statistics.median(accuracies):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
