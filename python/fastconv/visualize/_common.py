"""What the visualisations share: the model's layers by name, images as a batch, sub-models
over the model's own layers, frozen layers, and matplotlib on demand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..layers.base import Layer
from ..layers.core import Rescaling
from ..models.model import Model


def as_batch(model: Model, images: Any) -> np.ndarray:
    """``images`` as a float32 NHWC batch for ``model`` (one image (H, W, C) gets a batch axis)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == len(model.input.shape) - 1:
        x = x[None]
    model._check_data_shape(x.shape)
    return np.ascontiguousarray(x)


def layer_position(model: Model, name: str) -> tuple[Layer, int]:
    """The top-level layer called ``name`` and its position in the model's chain."""
    layer = model.get_layer(name)
    chain = model._chain()
    if layer not in chain:
        raise ValueError(f"'{name}' is the model's input layer: pick a layer after it")
    return layer, chain.index(layer)


def sub_model(model: Model, outputs: Sequence[Any], suffix: str) -> Model:
    """A model over ``model``'s own layers (weights shared) with the given outputs."""
    sub = Model(inputs=model.input, outputs=list(outputs), name=f"{model.name}_{suffix}")
    sub.fuse = model.fuse
    return sub


def _all_layers(model: Model) -> Iterator[Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, Model):
            yield from _all_layers(layer)


@contextlib.contextmanager
def frozen(model: Model) -> Iterator[None]:
    """Every layer frozen while the block runs: backward passes compute input gradients only
    (a frozen convolution computes no weight gradient); the flags are restored after."""
    layers = [model] + list(_all_layers(model))
    saved = [layer.trainable for layer in layers]
    try:
        for layer in layers:
            layer.trainable = False
        yield
    finally:
        for layer, flag in zip(layers, saved):
            layer.trainable = flag


def input_range(model: Model) -> tuple[float, float]:
    """The input values a model expects: what its first ``Rescaling`` maps onto [0, 1] (0..255
    for ``Rescaling(1/255)``), else [0, 1]."""
    for layer in model._chain():
        if isinstance(layer, Rescaling):
            lo, hi = sorted(
                ((0.0 - layer.offset) / layer.scale, (1.0 - layer.offset) / layer.scale)
            )
            return lo, hi
        if layer.weights:
            break
    return 0.0, 1.0


def normalized_image(a: np.ndarray) -> np.ndarray:
    """The chapter's display of an array: zero mean, unit std, then 128 +- 64, clipped to
    0..255 as uint8 (a flat array becomes mid grey)."""
    a = np.asarray(a, dtype=np.float64)
    a = a - a.mean()
    std = a.std()
    if std > 0:
        a = a / std
    return np.clip(a * 64 + 128, 0, 255).astype(np.uint8)


def figure_class(what: str):
    """matplotlib's ``Figure`` (no pyplot, no GUI backend), or a clear ImportError."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            f"{what} needs matplotlib: pip install 'fastconv[plot]' (or matplotlib)"
        ) from e
    return Figure


def colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]
