"""Activation functions by name: forward and backward (float32, vectorised)."""

from __future__ import annotations

import numpy as np

from . import ops

__all__ = ["get", "relu", "softmax", "sigmoid", "linear", "apply", "gradient"]

_NAMES = ("relu", "softmax", "sigmoid", "linear")


def get(identifier) -> str:
    """Normalise an activation identifier to one of the supported names ("linear" for None)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return identifier.lower()
    if callable(identifier) and getattr(identifier, "__name__", None) in _NAMES:
        return identifier.__name__
    raise ValueError(
        f"Could not interpret activation function identifier: {identifier!r}. "
        f"Supported: {', '.join(_NAMES)} or None."
    )


def _softmax_nd(x, axis=-1):
    x = np.asarray(x, dtype=np.float32)
    if axis in (-1, x.ndim - 1):
        shape = x.shape
        return ops.softmax(x.reshape(-1, shape[-1])).reshape(shape)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def relu(x):
    return ops.relu(x)


def softmax(x, axis=-1):
    return _softmax_nd(x, axis)


def sigmoid(x):
    x = np.asarray(x, dtype=np.float32)
    return ops.sigmoid(x.reshape(x.shape[0] if x.ndim else 1, -1)).reshape(x.shape)


def linear(x):
    return x


def apply(name: str, x, axis=-1):
    """Forward of activation ``name`` on ``x``."""
    if name == "linear":
        return x
    if name == "relu":
        return ops.relu(x)
    if name == "sigmoid":
        return sigmoid(x)
    if name == "softmax":
        return _softmax_nd(x, axis)
    raise ValueError(f"Unknown activation {name!r}")


def gradient(name: str, y, dy, axis=-1):
    """d(loss)/d(pre-activation) given the activation output ``y`` and d(loss)/dy."""
    if name == "linear":
        return dy
    if name == "relu":
        return ops.relu_grad(y, dy)
    if name == "sigmoid":
        return (dy * y * (1.0 - y)).astype(np.float32, copy=False)
    if name == "softmax":
        s = np.sum(dy * y, axis=axis, keepdims=True)
        return (y * (dy - s)).astype(np.float32, copy=False)
    raise ValueError(f"Unknown activation {name!r}")
