"""Dense (fully connected) layers: forward (bias and ReLU fused) and gradients."""

from __future__ import annotations

import numpy as np

from fastconv import _core

from ._checks import (
    ArrayLike,
    _activation,
    _empty,
    _expect_shape,
    _f32,
    _numeric,
    _rank,
)

__all__ = ["dense", "dense_grad"]


def _dense_operands(x, kernel):
    xa = _numeric(x, "x")
    _rank(xa, "x", 2, "(batch, features)")
    ka = _numeric(kernel, "kernel")
    _rank(ka, "kernel", 2, "(in_features, units)")
    if ka.shape[0] != xa.shape[1]:
        raise ValueError(
            f"kernel in_features {ka.shape[0]} (kernel shape {ka.shape}) does not match "
            f"x features {xa.shape[1]} (x shape {xa.shape})"
        )
    return xa, ka


def dense(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    activation: str | None = None,
) -> np.ndarray:
    """x @ kernel (+ bias), optionally with a fused ReLU; x is (batch, in), kernel (in, units)."""
    xa, ka = _dense_operands(x, kernel)
    relu_fused = _activation(activation)
    b = None
    if bias is not None:
        b = _numeric(bias, "bias")
        _expect_shape(b, "bias", (ka.shape[1],), f"units of kernel {ka.shape}")
        b = _f32(b)
    y = _empty((xa.shape[0], ka.shape[1]), "dense output")
    if y.size:
        _core.dense_forward(_f32(xa), _f32(ka), b, y, relu_fused)
    return y


def dense_grad(
    x: ArrayLike, kernel: ArrayLike, dy: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dkernel, dbias) of ``dense`` given the output gradient ``dy``."""
    xa, ka = _dense_operands(x, kernel)
    g = _numeric(dy, "dy")
    _expect_shape(g, "dy", (xa.shape[0], ka.shape[1]), f"the dense output for x {xa.shape}")
    dx = _empty(xa.shape, "dense dx")
    dkernel = _empty(ka.shape, "dense dkernel")
    dbias = _empty((ka.shape[1],), "dense dbias")
    if dkernel.size:
        _core.dense_backward(_f32(xa), _f32(ka), _f32(g), dx, dkernel, dbias)
    else:  # no input features or no units: nothing for the kernels to do
        dx.fill(0.0)
        dbias[...] = np.asarray(g, dtype=np.float64).sum(axis=0)
    return dx, dkernel, dbias
