"""The user-path comparison's child process: one framework, one model, ``fit`` or ``predict``,
alone in this process (fcbench.userpath starts it, in the environment the framework is measured
with; FCBENCH_SOLO=1 keeps fcbench from importing PyTorch).

    python -m fcbench.solo '{"framework": "fastconv", "model": "A", "mode": "fit", ...}'

The spec: ``framework`` (fastconv, keras, torch, onnxruntime), ``model`` (A, B), ``mode`` (fit,
predict), ``threads``, ``images`` (random arrays of the model's input shape, seeded), ``batch``,
``epochs`` (timed epochs after one warm-up epoch), ``calls`` (timed ``predict`` calls over all
images after a warm-up call), ``onnx`` (the graph's file, for onnxruntime), ``builders`` (the
lecture builders' source, for keras: this process, in the Keras venv, cannot import fastconv).

Prints one JSON line: images per second over the timed epochs or calls, the times, versions and
this process's own peak RSS (VmHWM; see peak_rss_mib).

Nothing here imports a framework at module level: each runner imports its own.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np

INPUTS = {"A": ((28, 28, 1), 10), "B": ((180, 180, 3), 2)}


def make_data(which, images, seed=0):
    """Random arrays of the model's input shape and labels: A in [0, 1) with 10 integer classes,
    B in [0, 255) with 0/1 float labels, as the lecture's data comes."""
    shape, classes = INPUTS[which]
    rng = np.random.default_rng(seed)
    x = rng.random((images, *shape), dtype=np.float32)
    if which == "B":
        x *= 255
        return x, rng.integers(0, 2, images).astype(np.float32)
    return x, rng.integers(0, classes, images)


def epoch_timer(base):
    """A callback (subclass of ``base``, the framework's Callback) recording each epoch's time."""

    class EpochTimer(base):
        def __init__(self):
            super().__init__()
            self.times, self._t0 = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    return EpochTimer()


def keras_shaped(module, build, spec, x, y):
    """(epoch times or None, predict) of a Keras-shaped framework: ``fit`` on the arrays (one
    warm-up epoch, then spec["epochs"]) or ``predict``."""
    model = build(module)
    if spec["mode"] == "fit":
        timer = epoch_timer(module.callbacks.Callback)
        epochs = 1 + spec["epochs"]
        model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer])
        return timer.times, None
    return None, lambda a: model.predict(a, batch_size=spec["batch"], verbose=0)


def run_fastconv(spec, x, y):
    import fastconv
    from fastconv import applications

    fastconv.set_num_threads(spec["threads"])
    build = {"A": applications.build_mnist_model, "B": applications.build_cats_vs_dogs_model}
    times, predict = keras_shaped(fastconv, build[spec["model"]], spec, x, y)
    try:
        isa = fastconv.info()["isa"]
    except Exception as exc:  # a tree whose Python and extension are out of step: still measure
        isa = f"unknown ({type(exc).__name__})"
    core = fastconv._core.__file__
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(core)))
    return times, predict, {"version": fastconv.__version__, "isa": isa, "core_built": built}


def lecture_builders(source):
    """The lecture builders (fastconv.applications.lecture's functions, passed as source) as
    functions of a Keras-like module: {name: function}."""
    from types import ModuleType
    from typing import Any

    namespace = {"Any": Any, "ModuleType": ModuleType, "_keras_module": lambda keras: keras}
    exec(compile(source, "fastconv/applications/lecture.py (builders)", "exec"), namespace)
    return namespace


def run_keras(spec, x, y):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    ns = lecture_builders(spec["builders"])
    build = {"A": ns["build_mnist_model"], "B": ns["build_cats_vs_dogs_model"]}[spec["model"]]
    times, predict = keras_shaped(keras, build, spec, x, y)
    return times, predict, {"version": f"{keras.__version__} / TF {tf.__version__}"}


def run_torch(spec, x, y):
    import torch

    from fcbench.baselines.pytorch import torch_at_best, torch_fit, torch_predictor

    torch_at_best(torch, spec["threads"])
    which, batch = spec["model"], spec["batch"]
    info = {"version": torch.__version__}
    if spec["mode"] == "fit":
        return torch_fit(torch, which, x, y, batch, 1 + spec["epochs"]), None, info
    return None, torch_predictor(torch, which, batch), info


def run_onnxruntime(spec, x, y):
    import onnxruntime

    from fcbench.baselines.onnx_rt import ort_predictor

    if spec["mode"] != "predict":
        raise ValueError("onnxruntime: inference only")
    predict = ort_predictor(spec["onnx"], spec["batch"], spec["threads"])
    return None, predict, {"version": onnxruntime.__version__}


RUNNERS = {
    "fastconv": run_fastconv,
    "keras": run_keras,
    "torch": run_torch,
    "onnxruntime": run_onnxruntime,
}


def peak_rss_mib():
    """This process's own peak RSS (VmHWM, MiB). Not ru_maxrss: Linux carries a process's
    ru_maxrss over an exec from the process that was there before it, and Python's subprocess
    starts children with vfork, so every child's ru_maxrss would be at least its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(spec):
    """The answer for one spec (a dict, JSON-ready)."""
    x, y = make_data(spec["model"], spec["images"], spec.get("seed", 0))
    times, predict, info = RUNNERS[spec["framework"]](spec, x, y)
    if predict is not None:
        predict(x)  # warm-up: graphs traced, buffers planned, weights packed
        times = []
        for _ in range(spec["calls"]):
            t0 = time.perf_counter()
            out = predict(x)
            times.append(time.perf_counter() - t0)
        assert len(out) == len(x), (out.shape, x.shape)
        timed = times
    else:
        timed = times[1:]  # the warm-up epoch is not counted
    return dict(
        spec={k: v for k, v in spec.items() if k != "builders"},
        img_s=len(x) * len(timed) / sum(timed),
        times_s=times,
        counted=len(timed),
        info=info,
        numpy=np.__version__,
        python=sys.executable,
        peak_rss_mib=peak_rss_mib(),
        env={k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GOMP_", "OMP_"))},
    )


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    if spec.get("builders_file"):
        with open(spec["builders_file"]) as f:
            spec["builders"] = f.read()
    answer = measure(spec)
    sys.stdout.write("FCBENCH_SOLO " + json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
