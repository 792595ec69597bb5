"""Losses fused with their final activation (softmax and sigmoid crossentropies)."""

from __future__ import annotations

import numpy as np

from fastconv import _core

from ._checks import (
    ArrayLike,
    _empty,
    _expect_shape,
    _f32,
    _numeric,
    _rank,
)

__all__ = ["sparse_softmax_cross_entropy", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"]


def _logits(logits, name="logits"):
    z = _numeric(logits, name)
    _rank(z, name, 2, "(batch, classes)")
    if z.shape[1] < 1:
        raise ValueError(f"{name} must have at least one class, got shape {z.shape}")
    return z


def sparse_softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses and d(loss)/d(logits) = softmax - onehot (not divided by the batch)."""
    z = _logits(logits)
    lab = np.asarray(labels)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab.reshape(-1)
    _expect_shape(lab, "labels", (z.shape[0],), f"one integer label per row of logits {z.shape}")
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise ValueError("labels must be integers (class indices)")
    elif lab.dtype.kind not in "iub":
        raise TypeError(f"labels must be integer class indices, got dtype {lab.dtype}")
    lab = np.ascontiguousarray(lab, dtype=np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= z.shape[1]):
        raise ValueError(
            f"labels must be in [0, {z.shape[1]}) for logits of shape {z.shape}; "
            f"got values in [{lab.min()}, {lab.max()}]"
        )
    losses = _empty((z.shape[0],), "losses")
    dlogits = _empty(z.shape, "dlogits")
    _core.sparse_softmax_cross_entropy(_f32(z), lab, losses, dlogits)
    return losses, dlogits


def softmax_cross_entropy(logits: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses and d(loss)/d(logits) for dense (e.g. one-hot) targets."""
    z = _logits(logits)
    t = _numeric(targets, "targets")
    _expect_shape(t, "targets", z.shape, "the shape of logits")
    losses = _empty((z.shape[0],), "losses")
    dlogits = _empty(z.shape, "dlogits")
    _core.softmax_cross_entropy(_f32(z), _f32(t), losses, dlogits)
    return losses, dlogits


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, targets: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise losses and d(loss)/d(logits) = sigmoid(logits) - targets."""
    z = _numeric(logits, "logits")
    t = _numeric(targets, "targets")
    # (batch,) targets for (batch, 1) logits, and the reverse, are the usual Keras mix-up.
    if t.shape != z.shape and _squeezed(t.shape) == _squeezed(z.shape):
        t = t.reshape(z.shape)
    if t.shape != z.shape:
        raise ValueError(f"targets must have the shape of logits {z.shape}, got {t.shape}")
    losses = _empty(z.shape, "losses")
    dlogits = _empty(z.shape, "dlogits")
    _core.sigmoid_binary_cross_entropy(_f32(z), _f32(t), losses, dlogits)
    return losses, dlogits
