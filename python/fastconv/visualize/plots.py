"""Pictures of filter patterns and Grad-CAM heatmaps (matplotlib, imported on first use)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..models.model import Model
from ._common import colormap, figure_class, layer_position, normalized_image
from .gradients import filter_pattern

__all__ = ["plot_filters", "plot_heatmap"]


def plot_filters(
    model: Model,
    layer_name: str,
    path: str | os.PathLike,
    filters: Sequence[int] | int = 16,
    steps: int = 30,
    learning_rate: float = 10.0,
    per_row: int = 8,
) -> np.ndarray:
    """Draw the patterns of a layer's filters (``filters``: their indices, or how many of the
    first ones) into the image file ``path``, each normalised for display as the chapter does.
    Returns the patterns (k, H, W, C) as ``filter_pattern`` made them."""
    layer, _ = layer_position(model, layer_name)
    if isinstance(filters, (int, np.integer)):
        filters = range(min(int(filters), layer.output.shape[-1]))
    filters = list(filters)
    if not filters:
        raise ValueError("`filters` is empty")
    Figure = figure_class("plot_filters")
    patterns = np.stack(
        [filter_pattern(model, layer_name, f, steps, learning_rate) for f in filters]
    )
    cols = min(per_row, len(filters))
    rows = math.ceil(len(filters) / cols)
    fig = Figure(figsize=(1.7 * cols, 2.0 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, f, pattern in zip(axes.ravel(), filters, patterns):
        shown = normalized_image(pattern)
        ax.imshow(shown[:, :, 0] if shown.shape[2] == 1 else shown, cmap="gray")
        ax.set_title(f"filter {f}", fontsize=8)
    fig.suptitle(f"What the filters of '{layer_name}' respond to most", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return patterns


def overlay(image: Any, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The chapter's superimposed picture (uint8 RGB): the heatmap in the jet colours, times
    ``alpha``, over the image, rescaled to 0..255."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.shape[:2] != np.shape(heatmap):
        raise ValueError(f"heatmap {np.shape(heatmap)} does not match image {img.shape[:2]}")
    if img.max() <= 1.0:
        img = img * 255.0
    jet = colormap("jet")(np.clip(heatmap, 0.0, 1.0))[:, :, :3] * 255.0
    mixed = jet * alpha + img
    return np.clip(mixed * (255.0 / max(mixed.max(), 1e-12)), 0, 255).astype(np.uint8)


def plot_heatmap(
    image: Any, heatmap: np.ndarray, path: str | os.PathLike, alpha: float = 0.4, title: str = ""
) -> np.ndarray:
    """Draw the image, its heatmap and the two superimposed (as the chapter does) into the
    image file ``path``. Returns the superimposed picture (uint8 RGB)."""
    Figure = figure_class("plot_heatmap")
    mixed = overlay(image, heatmap, alpha)
    img = np.asarray(image, dtype=np.float64)
    img = img / 255.0 if img.max() > 1.0 else img
    fig = Figure(figsize=(10.5, 3.8), dpi=100)
    axes = fig.subplots(1, 3)
    axes[0].imshow(np.clip(img.squeeze(), 0, 1), cmap="gray")
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(heatmap, cmap="jet", vmin=0.0, vmax=1.0)
    axes[1].set_title("Grad-CAM heatmap", fontsize=9)
    axes[2].imshow(mixed)
    axes[2].set_title("superimposed", fontsize=9)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return mixed
