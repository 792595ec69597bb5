"""Training and inference speed of the lecture's models for two checkouts of fastconv's Python
package, side by side: alternating rounds, each in a fresh process, medians reported.

    python bench/experiments/compare_checkouts.py BEFORE_REV [--rounds 5] [--model mnist|cats]

BEFORE_REV's ``python/`` is exported with ``git archive`` into a temporary folder and given the
installed extension (``fastconv._core``), so the two runs differ in their Python code only; the
other side is the working tree's package as installed. Each round times ``model.fit`` on
in-memory random data (no environment tuning) after one warm-up epoch, and ``model.predict``.
The models are written out here: the before side may predate ``fastconv.applications``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, sys, time
import numpy as np
import fastconv as keras
from fastconv import layers

def mnist():
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    m = keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    m.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, (28, 28, 1), 10, 2048, 64

def cats():
    inputs = keras.Input(shape=(180, 180, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    for i, f in enumerate((32, 64, 128, 256, 256)):
        x = layers.Conv2D(f, 3, activation="relu")(x)
        if i < 4:
            x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    m = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    m.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    return m, (180, 180, 3), 2, 96, 32

model, shape, classes, n, batch = {"mnist": mnist, "cats": cats}[sys.argv[1]]()
rng = np.random.default_rng(0)
x = (rng.random((n,) + shape) * 255).astype(np.float32)
y = rng.integers(0, classes, n)
model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
t = time.perf_counter(); model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
fit_s = time.perf_counter() - t
model.predict(x, batch_size=batch, verbose=0)
t = time.perf_counter(); model.predict(x, batch_size=batch, verbose=0)
predict_s = time.perf_counter() - t
print(json.dumps({"fit": n / fit_s, "predict": n / predict_s}))
"""


def export_before(rev: str, into: str) -> str:
    """BEFORE_REV's python/ package with the installed extension copied in; its path."""
    archive = os.path.join(into, "before.tar")
    subprocess.run(["git", "-C", REPO, "archive", "-o", archive, rev, "python"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    import fastconv

    for so in glob.glob(os.path.join(os.path.dirname(fastconv.__file__), "_core*.so")) + glob.glob(
        os.path.join(os.path.dirname(fastconv._core.__file__), "_core*.so")
    ):
        shutil.copy(so, os.path.join(into, "python", "fastconv"))
    return os.path.join(into, "python")


def run(model: str, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", help="git revision of the 'before' side")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model", choices=("mnist", "cats"), default="mnist")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before_path = export_before(a.before, tmp)
        results = {"before": [], "after": []}
        for r in range(a.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                results[side].append(run(a.model, before_path if side == "before" else None))
    for what in ("fit", "predict"):
        b = statistics.median(x[what] for x in results["before"])
        c = statistics.median(x[what] for x in results["after"])
        ratios = [y[what] / x[what] for x, y in zip(results["before"], results["after"])]
        print(
            f"{a.model} {what}: before {b:,.0f} img/s, after {c:,.0f} img/s, "
            f"after/before median of rounds {statistics.median(ratios):.3f} "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}, {a.rounds} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
