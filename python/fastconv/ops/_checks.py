"""Argument checks, conversions, output geometry and allocation shared by the ops."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Union

import numpy as np

from ._buffers import aligned_empty

IntPair = Union[int, Sequence[int]]
ArrayLike = Union[np.ndarray, Sequence, float]


# ----------------------------------------------------------------------------------------------
# argument handling


def _numeric(a: ArrayLike, name: str) -> np.ndarray:
    """The argument as an ndarray without copying, refusing non-numeric data."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name} must be a numeric array: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a numeric array, got dtype {arr.dtype} (shape {arr.shape})"
        )
    return arr


def _f32(arr: np.ndarray) -> np.ndarray:
    # np.asarray, unlike np.ascontiguousarray, keeps 0-d arrays 0-d.
    return np.asarray(arr, dtype=np.float32, order="C")


def _rank(arr: np.ndarray, name: str, rank: int, layout: str) -> None:
    if arr.ndim != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {arr.shape}")


# The kernels index with 64-bit integers; larger strides, sizes or dilations cannot be meant.
_MAX_WINDOW = 2**62


def _pair(value: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items
        ):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if max(pair) > _MAX_WINDOW:
        raise ValueError(f"{name} must be <= {_MAX_WINDOW} (2**62), got {value!r}")
    return pair


def _padding(padding: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def _activation(activation: str | None) -> bool:
    """True when the fused ReLU is requested."""
    if activation is None or activation == "linear":
        return False
    if activation == "relu":
        return True
    raise ValueError(f"activation must be None, 'linear' or 'relu', got {activation!r}")


@functools.cache
def _physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 46


def _empty(shape: tuple[int, ...], what: str, dtype: type = np.float32) -> np.ndarray:
    """Allocates a float32 (or ``dtype``) result on a 64-byte boundary (from the model's buffer
    pool inside its steps), refusing sizes the machine cannot hold (MemoryError)."""
    nbytes = np.dtype(dtype).itemsize * math.prod(shape)
    if nbytes > _physical_memory_bytes():
        raise MemoryError(
            f"{what} of shape {shape} needs {nbytes / 2**30:.1f} GiB, more than this machine has"
        )
    return aligned_empty(shape, dtype)


def _window_geometry(
    size: int, window: int, stride: int, dilation: int, padding: str
) -> tuple[int, int]:
    """(output size, padding before) along one axis, with Keras' semantics."""
    effective = (window - 1) * dilation + 1
    if padding == "valid":
        out = (size - effective) // stride + 1 if size >= effective else 0
        return out, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


def _geometry(
    spatial: tuple[int, int],
    window: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str,
    what: str,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Output (h, w) and padding (top, left); ValueError when the output would be empty."""
    oh, pt = _window_geometry(spatial[0], window[0], strides[0], dilation[0], padding)
    ow, pl = _window_geometry(spatial[1], window[1], strides[1], dilation[1], padding)
    if oh <= 0 or ow <= 0:
        raise ValueError(
            f"{what}: input spatial size {spatial} is too small for window {window} "
            f"(dilation {dilation}, strides {strides}, padding '{padding}'): output would be "
            f"{(oh, ow)}"
        )
    return (oh, ow), (pt, pl)


def conv2d_output_shape(
    input_shape: Sequence[int],
    kernel_size: IntPair,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
) -> tuple[int, int]:
    """Spatial output size (h, w) of a convolution over ``input_shape`` ((h, w) or NHWC)."""
    spatial = _spatial(input_shape)
    out, _ = _geometry(
        spatial,
        _pair(kernel_size, "kernel_size"),
        _pair(strides, "strides"),
        _pair(dilation_rate, "dilation_rate"),
        _padding(padding),
        "conv2d",
    )
    return out


def pool2d_output_shape(
    input_shape: Sequence[int],
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding: str = "valid",
) -> tuple[int, int]:
    """Spatial output size (h, w) of a pooling over ``input_shape`` ((h, w) or NHWC)."""
    pool = _pair(pool_size, "pool_size")
    stride = pool if strides is None else _pair(strides, "strides")
    out, _ = _geometry(_spatial(input_shape), pool, stride, (1, 1), _padding(padding), "pool2d")
    return out


def _spatial(input_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(input_shape)
    if len(shape) == 4:
        shape = shape[1:3]
    if len(shape) != 2 or any(s is None or int(s) < 1 for s in shape):
        raise ValueError(
            f"input_shape must be (h, w) or (n, h, w, c) with h, w >= 1, got {input_shape}"
        )
    return int(shape[0]), int(shape[1])


def _image(x: ArrayLike, name: str = "x") -> np.ndarray:
    arr = _numeric(x, name)
    _rank(arr, name, 4, "(batch, height, width, channels)")
    if min(arr.shape[1:]) < 1:
        raise ValueError(f"{name} must have height, width and channels >= 1, got shape {arr.shape}")
    return arr


def _expect_shape(arr: np.ndarray, name: str, shape: tuple[int, ...], why: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({why}), got {arr.shape}")
