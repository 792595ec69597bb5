"""``plot_history``: the lecture's training curves, drawn with matplotlib (extra ``plot``)."""

from __future__ import annotations

import os
from typing import Any


def _history_dict(history):
    h = getattr(history, "history", history)
    if not isinstance(h, dict):
        raise TypeError(
            "plot_history expects a History (the return value of fit) or its .history dict, "
            f"got {type(history).__name__}"
        )
    return h


def plot_history(history: Any, path: str | os.PathLike) -> str | os.PathLike:
    """Draw training and validation curves per epoch into the image file ``path`` (PNG, SVG,
    PDF... by extension), one panel per metric (loss first), as the lecture's figures: training
    as dots ("bo"), validation as a line ("b"). Returns ``path``."""
    h = _history_dict(history)
    metrics = [k for k in h if not k.startswith("val_")]
    metrics.sort(key=lambda k: (k != "loss", k))
    if not metrics:
        raise ValueError("the history holds no metric to plot")
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as e:
        raise ImportError(
            "plot_history needs matplotlib: pip install 'fastconv[plot]' (or matplotlib)"
        ) from e

    fig = Figure(figsize=(5.5 * len(metrics), 4.2), dpi=100)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, key in zip(axes, metrics):
        values = list(h[key])
        epochs = range(1, len(values) + 1)
        title = key.replace("_", " ")
        ax.plot(epochs, values, "bo", label=f"Training {title}")
        if f"val_{key}" in h:
            val = list(h[f"val_{key}"])
            ax.plot(range(1, len(val) + 1), val, "b", label=f"Validation {title}")
            ax.set_title(f"Training and validation {title}")
        else:
            ax.set_title(f"Training {title}")
        ax.set_xlabel("Epochs")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(title.capitalize())
        ax.legend()
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path)
    return path
