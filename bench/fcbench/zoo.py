"""The model zoo: the lecture's two convnets, A (MNIST, batch 64) and B (cats-vs-dogs, batch 32), as
every implementation the benchmarks compare, each a pair of (training step, inference) calls on one
batch:

- ``fastconv``: fastconv's Keras-shaped API (the graph of ``fastconv.applications``),
  ``train_on_batch`` / ``predict_on_batch``;
- ``fastconv-winograd``: the same with the opt-in Winograd F(2x2, 3x3) convolutions on;
- ``fastconv-ops``: the same step written directly with fastconv.ops (``OpsModel``): the
  difference to ``fastconv`` is the API's overhead;
- ``torch``: PyTorch, channels_last, RMSprop(lr=1e-3), CrossEntropyLoss / BCEWithLogitsLoss;
- ``keras``: Keras on TensorFlow when importable (the same ``fastconv.applications`` graph).
"""

from __future__ import annotations

import numpy as np
from fastconv import applications, ops

from fcbench.baselines.keras_tf import keras_steps
from fcbench.baselines.pytorch import torch_steps
from fcbench.runtime import has_winograd, with_winograd
from fcbench.shapes import MODEL_SPECS, model_batch

__all__ = ["IMPLS", "MODEL_SPECS", "OpsModel", "fastconv_model", "model_batch", "model_steps"]

IMPLS = ("fastconv", "fastconv-winograd", "fastconv-ops", "torch", "keras")
F32 = np.float32


def fastconv_model(which, keras=None):
    """The lecture's model A or B, compiled the lecture's way, built with ``keras`` (a Keras-like
    module; default fastconv)."""
    if which == "A":
        return applications.build_mnist_model(keras)
    return applications.build_cats_vs_dogs_model(keras)


def _keras_shaped_steps(model, x, y):
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))


def model_steps(impl, which, x, y, torch=None, threads=1):
    """(train_step, predict) of one implementation on the batch (x, y), or None where it does not
    apply (PyTorch or TensorFlow not installed, Winograd not built)."""
    if impl == "fastconv":
        return _keras_shaped_steps(fastconv_model(which), x, y)
    if impl == "fastconv-winograd":
        if not has_winograd():
            return None
        return tuple(map(with_winograd, _keras_shaped_steps(fastconv_model(which), x, y)))
    if impl == "fastconv-ops":
        model = OpsModel(which)
        return (lambda: model.train_step(x, y)), (lambda: model.predict(x))
    if impl == "torch":
        return None if torch is None else torch_steps(torch, which, x, y)
    if impl == "keras":
        return keras_steps(which, x, y, threads)
    raise ValueError(f"unknown implementation {impl!r}; one of {IMPLS}")


class OpsModel:
    """The lecture's model as a training step written directly with fastconv.ops (no layers)."""

    def __init__(self, which, seed=0, lr=1e-3):
        spec = MODEL_SPECS[which]
        rng = np.random.default_rng(seed)
        self.which, self.lr, self.pools = which, lr, spec["pools"]
        cin, h, w = spec["input"][2], spec["input"][0], spec["input"][1]
        self.params = []
        for f, pool in zip(spec["filters"], spec["pools"]):
            lim = np.sqrt(6.0 / (9 * cin + 9 * f))
            self.params += [rng.uniform(-lim, lim, (3, 3, cin, f)).astype(F32), np.zeros(f, F32)]
            cin, h, w = f, h - 2, w - 2
            if pool:
                h, w = h // 2, w // 2
        fin = h * w * cin
        lim = np.sqrt(6.0 / (fin + spec["units"]))
        self.params += [rng.uniform(-lim, lim, (fin, spec["units"])).astype(F32)]
        self.params += [np.zeros(spec["units"], F32)]
        self.velocity = [np.zeros_like(p) for p in self.params]

    def _forward(self, x):
        if self.which == "B":
            x = x * F32(1.0 / 255)
        saved = []
        h = x
        for i, pool in enumerate(self.pools):
            k, b = self.params[2 * i], self.params[2 * i + 1]
            y = ops.conv2d(h, k, b, activation="relu")
            saved.append((h, y))
            h = ops.max_pool2d(y) if pool else y
        flat = h.reshape(h.shape[0], -1)
        logits = ops.dense(flat, self.params[-2], self.params[-1])
        return logits, saved, flat, h.shape

    def predict(self, x):
        logits, *_ = self._forward(x)
        return ops.softmax(logits) if self.which == "A" else ops.sigmoid(logits)

    def train_step(self, x, y):
        n = x.shape[0]
        logits, saved, flat, hshape = self._forward(x)
        if self.which == "A":
            losses, dz = ops.sparse_softmax_cross_entropy(logits, y)
        else:
            losses, dz = ops.sigmoid_binary_cross_entropy(logits, y.reshape(n, 1))
        dz *= F32(1.0 / n)  # mean over the batch (B has one logit per sample)
        grads = [None] * len(self.params)
        dflat, grads[-2], grads[-1] = ops.dense_grad(flat, self.params[-2], dz)
        dh = dflat.reshape(hshape)
        for i in reversed(range(len(self.pools))):
            h, y_ = saved[i]
            if self.pools[i]:
                dh = ops.max_pool2d_grad(y_, dh)
            dz_ = ops.relu_grad(y_, dh)
            dh, grads[2 * i], grads[2 * i + 1] = ops.conv2d_grad(
                h, self.params[2 * i], dz_, need_dx=i > 0
            )
        for p, g, v in zip(self.params, grads, self.velocity):
            ops.rmsprop_update(p, g, v, learning_rate=self.lr)
        return float(losses.mean())
