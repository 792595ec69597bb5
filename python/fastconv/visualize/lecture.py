"""The lecture's own figures, computed by ``fastconv.ops``: an image convolved with hand-set
edge kernels, and the 2x2 max-pooling example (stride 2: 4x4 in, 2x2 out)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import ops
from ._common import figure_class

__all__ = [
    "EDGE_KERNELS",
    "edge_detection",
    "plot_edge_detection",
    "max_pooling_example",
    "plot_max_pooling",
]

EDGE_KERNELS = {
    "vertical edges": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "horizontal edges": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    "outline": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32),
}

# The lecture's worked example: max pooling with 2x2 windows and stride 2 gives [[6, 8], [3, 4]].
POOLING_INPUT = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float32)


def _grey(image: Any) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2:
        raise ValueError(f"expected an image (H, W) or (H, W, C); received shape {img.shape}")
    return img


def edge_detection(image: Any, kernel: Any = "vertical edges") -> np.ndarray:
    """The response (H-2, W-2) of the grey image to a 3x3 edge kernel (a name from
    ``EDGE_KERNELS`` or an array), by ``ops.conv2d`` ('valid', as a Conv2D layer computes it)."""
    k = EDGE_KERNELS[kernel] if isinstance(kernel, str) else np.asarray(kernel, np.float32)
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D; received shape {k.shape}")
    x = _grey(image)[None, :, :, None]
    return ops.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(k[:, :, None, None]))[
        0, :, :, 0
    ]


def plot_edge_detection(image: Any, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Draw the grey image and its response to each of ``EDGE_KERNELS`` into ``path``."""
    Figure = figure_class("plot_edge_detection")
    responses = {name: edge_detection(image, name) for name in EDGE_KERNELS}
    fig = Figure(figsize=(3.2 * (1 + len(responses)), 4.2), dpi=100)
    axes = fig.subplots(1, 1 + len(responses))
    axes[0].imshow(_grey(image), cmap="gray")
    axes[0].set_title("image", fontsize=9)
    for ax, (name, r) in zip(axes[1:], responses.items()):
        ax.imshow(np.abs(r), cmap="gray")
        kernel = "\n".join(" ".join(f"{v:+.0f}" for v in row) for row in EDGE_KERNELS[name])
        ax.set_title(f"{name}\n{kernel}", fontsize=8, family="monospace")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    return responses


def max_pooling_example() -> tuple[np.ndarray, np.ndarray]:
    """(the 4x4 input, its 2x2 max pooling with stride 2) by ``ops.max_pool2d``."""
    pooled = ops.max_pool2d(POOLING_INPUT[None, :, :, None], pool_size=2)
    return POOLING_INPUT.copy(), pooled[0, :, :, 0]


def plot_max_pooling(path: str | os.PathLike) -> np.ndarray:
    """Draw the lecture's max-pooling example (each 2x2 window in its colour) into ``path``."""
    Figure = figure_class("plot_max_pooling")
    x, pooled = max_pooling_example()
    colours = np.array([[0.55, 0.75, 0.95], [0.95, 0.65, 0.65], [0.7, 0.9, 0.65], [1.0, 0.9, 0.5]])
    window = np.arange(4).reshape(2, 2)
    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for ax, grid, scale, title in (
        (axes[0], x, 2, "input (4x4)"),
        (axes[1], pooled, 1, "max pool 2x2, stride 2"),
    ):
        n = grid.shape[0]
        ax.imshow(colours[np.kron(window, np.ones((scale, scale), int))], interpolation="nearest")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=16)
        ax.set_xticks(np.arange(-0.5, n), minor=True)
        ax.set_yticks(np.arange(-0.5, n), minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return pooled
