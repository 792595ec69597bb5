"""MkDocs hook: draw the lecture's figures with ``fastconv.ops`` before the site is built.

Written into docs/figures/ (not in git: each build computes them again), so the pictures in the
walk-through are what this version of fastconv computes: a 3x3 convolution over a digit, edge
detection with hand-set kernels, and the 2x2 max-pooling example (6 8 / 3 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def _digit():
    from fastconv.datasets import digits

    (x, y), _ = digits.load_data(shifted_copies=False)
    return x[np.flatnonzero(y == 3)[0]].astype(np.float32) / 255


def _convolution_figure(path):
    """A digit, a 3x3 kernel, and the feature map ``ops.conv2d`` computes; one window and the
    output cell it gives are outlined."""
    from fastconv import ops
    from fastconv.visualize.lecture import EDGE_KERNELS
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    image = _digit()
    kernel = EDGE_KERNELS["horizontal edges"]
    out = ops.conv2d(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
    fig = Figure(figsize=(10, 3.6), dpi=100)
    ax_in, ax_k, ax_out = fig.subplots(1, 3, gridspec_kw={"width_ratios": [28, 9, 26]})
    ax_in.imshow(image, cmap="gray")
    ax_in.add_patch(Rectangle((9.5, 5.5), 3, 3, fill=False, edgecolor="red", linewidth=2))
    ax_in.set_title("input 28x28x1", fontsize=10)
    ax_k.imshow(kernel, cmap="coolwarm", vmin=-2, vmax=2)
    for i in range(3):
        for j in range(3):
            ax_k.text(j, i, f"{kernel[i, j]:+.0f}", ha="center", va="center")
    ax_k.set_title("3x3 kernel", fontsize=10)
    ax_out.imshow(out, cmap="coolwarm", vmin=-abs(out).max(), vmax=abs(out).max())
    ax_out.add_patch(Rectangle((9.5, 5.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax_out.set_title("feature map 26x26 (ops.conv2d, 'valid')", fontsize=10)
    for ax in (ax_in, ax_k, ax_out):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)


def _shapes(size=72):
    """A grey picture with straight and round edges: a square, a disc and a bar."""
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), 0.15, np.float32)
    image[10:34, 8:32] = 0.9
    image[(yy - 48) ** 2 + (xx - 50) ** 2 < 15**2] = 0.7
    image[50:58, 6:40] = 0.5
    return image


def on_pre_build(config, **kwargs):
    from fastconv.visualize.lecture import plot_edge_detection, plot_max_pooling

    FIGURES.mkdir(exist_ok=True)
    _convolution_figure(FIGURES / "convolution.png")
    plot_edge_detection(_shapes(), FIGURES / "edge_detection.png")
    pooled = plot_max_pooling(FIGURES / "max_pooling.png")
    assert pooled.tolist() == [[6, 8], [3, 4]], pooled  # the lecture's answer
