"""Optimizer updates, in place: SGD (momentum, Nesterov), RMSprop, Adam."""

from __future__ import annotations

import numpy as np

from fastconv import _core

from ._checks import (
    ArrayLike,
    _expect_shape,
    _f32,
    _numeric,
)

__all__ = ["sgd_update", "rmsprop_update", "adam_update"]


def _state(arr: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array updated in place, got {type(arr).__name__}")
    if arr.dtype != np.float32 or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(
            f"{name} must be a writeable C-contiguous float32 array (updated in place), got "
            f"dtype {arr.dtype}, shape {arr.shape}"
        )
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _grad_for(param: np.ndarray, grad: ArrayLike) -> np.ndarray:
    g = _numeric(grad, "grad")
    _expect_shape(g, "grad", param.shape, "the shape of param")
    return _f32(g)


def sgd_update(
    param: np.ndarray,
    grad: ArrayLike,
    momentum_buffer: np.ndarray | None,
    *,
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
) -> None:
    """Keras' SGD step, in place: m = momentum*m - lr*g; w += m (or the Nesterov form)."""
    p = _state(param, "param", np.shape(param))
    buf = None
    if momentum != 0.0 or momentum_buffer is not None:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum != 0")
        buf = _state(momentum_buffer, "momentum_buffer", p.shape)
    _core.sgd_update(
        p, _grad_for(p, grad), buf, float(learning_rate), float(momentum), bool(nesterov)
    )


def rmsprop_update(
    param: np.ndarray,
    grad: ArrayLike,
    velocity: np.ndarray,
    *,
    learning_rate: float,
    rho: float = 0.9,
    epsilon: float = 1e-7,
) -> None:
    """Keras 3's RMSprop step, in place: v = rho*v + (1-rho)*g^2; w -= lr*g/sqrt(v+eps)."""
    p = _state(param, "param", np.shape(param))
    v = _state(velocity, "velocity", p.shape)
    _core.rmsprop_update(p, _grad_for(p, grad), v, float(learning_rate), float(rho), float(epsilon))


def adam_update(
    param: np.ndarray,
    grad: ArrayLike,
    m: np.ndarray,
    v: np.ndarray,
    *,
    learning_rate: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    iteration: int,
) -> None:
    """Keras 3's Adam step t = ``iteration`` (1-based), in place."""
    p = _state(param, "param", np.shape(param))
    ms = _state(m, "m", p.shape)
    vs = _state(v, "v", p.shape)
    if int(iteration) < 1:
        raise ValueError(f"iteration must be >= 1, got {iteration}")
    _core.adam_update(
        p,
        _grad_for(p, grad),
        ms,
        vs,
        float(learning_rate),
        float(beta_1),
        float(beta_2),
        float(epsilon),
        int(iteration),
    )
