"""Element-wise activations: ReLU forward and backward, softmax, sigmoid."""

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

__all__ = ["relu", "relu_grad", "softmax", "sigmoid"]


def relu(x: ArrayLike) -> np.ndarray:
    """max(x, 0), element-wise (NaN stays NaN)."""
    xf = _f32(_numeric(x, "x"))
    y = _empty(xf.shape, "relu output")
    _core.relu_forward(xf, y)
    return y


def relu_grad(x: ArrayLike, dy: ArrayLike) -> np.ndarray:
    """dy where x > 0, else 0. ``x`` may be the ReLU's input or its output."""
    xa, ga = _numeric(x, "x"), _numeric(dy, "dy")
    _expect_shape(ga, "dy", xa.shape, "the shape of x")
    dx = _empty(xa.shape, "relu_grad output")
    _core.relu_backward(_f32(xa), _f32(ga), dx)
    return dx


def softmax(x: ArrayLike) -> np.ndarray:
    """Softmax over the last axis of a (batch, classes) array."""
    xa = _numeric(x, "x")
    _rank(xa, "x", 2, "(batch, classes)")
    y = _empty(xa.shape, "softmax output")
    _core.softmax(_f32(xa), y)
    return y


def sigmoid(x: ArrayLike) -> np.ndarray:
    """1 / (1 + exp(-x)), element-wise and overflow-free."""
    xf = _f32(_numeric(x, "x"))
    y = _empty(xf.shape, "sigmoid output")
    _core.sigmoid(xf, y)
    return y
