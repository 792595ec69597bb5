"""The activations of a model's conv and pooling layers for some images, and the chapter's
grid of channels per layer."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..layers.convolutional import Conv2D
from ..layers.pooling import AveragePooling2D, MaxPooling2D
from ..models.model import Model
from ._common import as_batch, colormap, figure_class, layer_position, normalized_image, sub_model

__all__ = ["activations", "conv_and_pooling_layers", "plot_activations"]


def conv_and_pooling_layers(model: Model) -> list[str]:
    """The names of the model's conv and pooling layers, in order (the chapter's choice)."""
    kinds = (Conv2D, MaxPooling2D, AveragePooling2D)
    return [layer.name for layer in model._chain() if isinstance(layer, kinds)]


def activations(
    model: Model, images: Any, layers: Sequence[str] | None = None, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """``{layer name: its output for images}`` for ``layers`` (default: every conv and pooling
    layer), from one forward pass of the chapter's activation model: a model over the same
    layers with one output per layer."""
    names = list(layers) if layers is not None else conv_and_pooling_layers(model)
    if not names:
        raise ValueError(f"model '{model.name}' has no conv or pooling layer: pass `layers`")
    x = as_batch(model, images)
    outputs = [layer_position(model, name)[0].output for name in names]
    activation_model = sub_model(model, outputs, "activations")
    values = activation_model.predict(x, batch_size=batch_size, verbose=0)
    if len(names) == 1:
        values = [values]
    return dict(zip(names, values))


def channel_grid(activation: np.ndarray, images_per_row: int = 16) -> np.ndarray:
    """One sample's activation (h, w, channels) as the chapter's grid: each channel normalised
    for display (0..255), ``images_per_row`` channels a row, one pixel of NaN (drawn white)
    between."""
    h, w, c = activation.shape
    cols = min(images_per_row, c)
    rows = math.ceil(c / cols)
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, np.float32)
    for k in range(c):
        r, q = divmod(k, cols)
        grid[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = normalized_image(
            activation[:, :, k]
        )
    return grid


def plot_activations(
    model: Model,
    image: Any,
    path: str | os.PathLike,
    layers: Sequence[str] | None = None,
    images_per_row: int = 16,
) -> dict[str, np.ndarray]:
    """Draw, for one image, every channel of each layer's activation (default: the conv and
    pooling layers) into the image file ``path``, one panel per layer as the chapter does.
    Returns the activations."""
    x = as_batch(model, image)
    if len(x) != 1:
        raise ValueError(f"plot_activations draws one image; received {len(x)}")
    acts = activations(model, x, layers)
    Figure = figure_class("plot_activations")
    cmap = colormap("viridis").with_extremes(bad="white")
    grids = {name: channel_grid(a[0], images_per_row) for name, a in acts.items()}
    heights = [g.shape[0] / g.shape[1] for g in grids.values()]
    width = 12.0
    fig = Figure(figsize=(width, width * sum(heights) + 0.35 * len(grids)), dpi=100)
    axes = fig.subplots(len(grids), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, (name, grid) in zip(axes[:, 0], grids.items()):
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=255, aspect="equal", interpolation="nearest")
        a = acts[name]
        ax.set_title(f"{name}: {a.shape[3]} channels of {a.shape[1]}x{a.shape[2]}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    return acts
