"""NumPy-facing functional ops: validate, convert, allocate, and call the C++ kernels.

Every op is a pair of pure functions, ``op(...)`` and ``op_grad(...)``. Inputs may be any numeric
array-likes; they are converted to C-contiguous float32, and results are float32. Bad arguments
raise ValueError/TypeError naming the argument and the shapes before any memory is touched.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Union

import numpy as np

from fastconv import _core

IntPair = Union[int, Sequence[int]]
ArrayLike = Union[np.ndarray, Sequence, float]

__all__ = [
    "conv2d",
    "conv2d_grad",
    "conv2d_max_pool",
    "conv2d_relu_max_pool_weight_grad",
    "relu",
    "relu_grad",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_relu_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "dense",
    "dense_grad",
    "conv2d_output_shape",
    "pool2d_output_shape",
    "softmax",
    "sigmoid",
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sgd_update",
    "rmsprop_update",
    "adam_update",
]


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


_ALIGN = 64  # a cache line: the kernels stream large outputs to whole, aligned lines


def _empty(shape: tuple[int, ...], what: str) -> np.ndarray:
    """Allocates a float32 result on a 64-byte boundary, refusing sizes the machine cannot hold
    (MemoryError)."""
    nbytes = 4 * math.prod(shape)
    if nbytes > _physical_memory_bytes():
        raise MemoryError(
            f"{what} of shape {shape} needs {nbytes / 2**30:.1f} GiB, more than this machine has"
        )
    if nbytes < 1 << 20:  # small results are not streamed (the kernels stream from 48 MB)
        return np.empty(shape, dtype=np.float32)
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + nbytes].view(np.float32).reshape(shape)


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


# ----------------------------------------------------------------------------------------------
# convolution


class _ConvPlan:
    """Validated geometry of one convolution call."""

    def __init__(self, x, kernel, strides, padding, dilation_rate):
        self.x = _image(x, "x")
        self.kernel = _numeric(kernel, "kernel")
        _rank(self.kernel, "kernel", 4, "(kernel_h, kernel_w, in_channels, filters)")
        if min(self.kernel.shape) < 1:
            raise ValueError(f"kernel dimensions must be >= 1, got shape {self.kernel.shape}")
        if self.kernel.shape[2] != self.x.shape[3]:
            raise ValueError(
                f"kernel in_channels {self.kernel.shape[2]} (kernel shape {self.kernel.shape}) "
                f"does not match x channels {self.x.shape[3]} (x shape {self.x.shape})"
            )
        self.strides = _pair(strides, "strides")
        self.dilation = _pair(dilation_rate, "dilation_rate")
        self.padding = _padding(padding)
        (oh, ow), self.pads = _geometry(
            self.x.shape[1:3],
            self.kernel.shape[:2],
            self.strides,
            self.dilation,
            self.padding,
            f"conv2d (x shape {self.x.shape}, kernel shape {self.kernel.shape})",
        )
        self.out_shape = (self.x.shape[0], oh, ow, self.kernel.shape[3])

    def args(self):
        return self.strides, self.dilation, self.pads

    def weight_grads(self, call_core):
        """(dkernel, dbias) filled by call_core(dkernel, dbias); zeros for an empty batch."""
        dkernel = _empty(self.kernel.shape, "conv2d dkernel")
        dbias = _empty((self.kernel.shape[3],), "conv2d dbias")
        if self.x.shape[0] == 0:
            dkernel.fill(0.0)
            dbias.fill(0.0)
        else:
            call_core(dkernel, dbias)
        return dkernel, dbias

    def checked_bias(self, bias):
        """The bias as float32 (filters,), or None."""
        if bias is None:
            return None
        b = _numeric(bias, "bias")
        _expect_shape(b, "bias", (self.kernel.shape[3],), f"filters of kernel {self.kernel.shape}")
        return _f32(b)


def conv2d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    activation: str | None = None,
) -> np.ndarray:
    """2-D convolution of NHWC ``x`` with a (kh, kw, in, out) kernel, optional bias, fused ReLU."""
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    relu_fused = _activation(activation)
    b = plan.checked_bias(bias)
    y = _empty(plan.out_shape, "conv2d output")
    if y.size:
        _core.conv2d_forward(_f32(plan.x), _f32(plan.kernel), b, y, *plan.args(), relu_fused)
    return y


def _tiling_pool(conv_out_shape, pool_size, what):
    """(pool pair, pooled (h, w)) of max pooling windows that tile a conv output of that shape."""
    pool = _pair(pool_size, "pool_size")
    (oh, ow), _ = _geometry(
        conv_out_shape[1:3], pool, pool, (1, 1), "valid", f"{what} (conv output {conv_out_shape})"
    )
    return pool, (oh, ow)


def conv2d_max_pool(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    activation: str | None = None,
    pool_size: IntPair = 2,
    keep_conv_output: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(y, max_pool2d(y, pool_size))`` for ``y = conv2d(x, kernel, bias, ...)``, in one pass.

    The pooling windows tile y (strides = pool_size, 'valid'). Each band of y's rows under a row
    of windows is pooled while in cache, instead of y being read again from memory: for layers
    with few input channels (an image's 1 to 4), whose output is the largest of a model; others
    take the two passes. With ``keep_conv_output=False`` (inference) y is not kept: None.
    """
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    relu_fused = _activation(activation)
    b = plan.checked_bias(bias)
    pool, (ph, pw) = _tiling_pool(plan.out_shape, pool_size, "conv2d_max_pool")
    pooled = _empty((plan.out_shape[0], ph, pw, plan.out_shape[3]), "max_pool2d output")
    y = _empty(plan.out_shape, "conv2d output") if keep_conv_output else None
    if pooled.size or (y is not None and y.size):
        _core.conv2d_forward_max_pool(
            _f32(plan.x),
            _f32(plan.kernel),
            b,
            y,
            pooled,
            plan.out_shape[1:3],
            *plan.args(),
            pool,
            relu_fused,
        )
    return y, pooled


def conv2d_grad(
    x: ArrayLike,
    kernel: ArrayLike,
    dy: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (dx, dkernel, dbias) of a convolution given the output gradient ``dy``.

    ``need_dx=False`` skips the input gradient (the first layer of a model needs none) and
    returns None in its place.
    """
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    g = _numeric(dy, "dy")
    _expect_shape(g, "dy", plan.out_shape, f"the conv2d output for x {plan.x.shape}")
    xf, kf, gf = _f32(plan.x), _f32(plan.kernel), _f32(g)
    dx = _empty(plan.x.shape, "conv2d dx") if need_dx else None
    if dx is not None and dx.size:
        _core.conv2d_backward_input(gf, kf, dx, *plan.args())
    dkernel, dbias = plan.weight_grads(
        lambda dk, db: _core.conv2d_backward_weight(xf, gf, dk, db, *plan.args())
    )
    return dx, dkernel, dbias


# ----------------------------------------------------------------------------------------------
# activations


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


# ----------------------------------------------------------------------------------------------
# pooling


class _PoolPlan:
    def __init__(self, x, pool_size, strides, padding, what):
        self.x = _image(x, "x")
        self.pool = _pair(pool_size, "pool_size")
        self.strides = self.pool if strides is None else _pair(strides, "strides")
        self.padding = _padding(padding)
        (oh, ow), self.pads = _geometry(
            self.x.shape[1:3],
            self.pool,
            self.strides,
            (1, 1),
            self.padding,
            f"{what} (x shape {self.x.shape})",
        )
        self.out_shape = (self.x.shape[0], oh, ow, self.x.shape[3])

    def args(self):
        return self.pool, self.strides, self.pads


def _pool(core_fn, what, x, pool_size, strides, padding):
    plan = _PoolPlan(x, pool_size, strides, padding, what)
    y = _empty(plan.out_shape, f"{what} output")
    if y.size:
        core_fn(_f32(plan.x), y, *plan.args())
    return y


def max_pool2d(
    x: ArrayLike, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid"
) -> np.ndarray:
    """Max pooling over NHWC ``x``; strides default to the pool size."""
    return _pool(_core.max_pool2d_forward, "max_pool2d", x, pool_size, strides, padding)


def avg_pool2d(
    x: ArrayLike, pool_size: IntPair = 2, strides: IntPair | None = None, padding: str = "valid"
) -> np.ndarray:
    """Average pooling over NHWC ``x``; 'same' averages only the cells inside the image."""
    return _pool(_core.avg_pool2d_forward, "avg_pool2d", x, pool_size, strides, padding)


def _pool_grad(what, x, dy, pool_size, strides, padding, call_core):
    plan = _PoolPlan(x, pool_size, strides, padding, f"{what}_grad")
    g = _numeric(dy, "dy")
    _expect_shape(g, "dy", plan.out_shape, f"the {what} output for x {plan.x.shape}")
    dx = _empty(plan.x.shape, f"{what}_grad output")
    if dx.size:
        call_core(_f32(plan.x), _f32(g), dx, *plan.args())
    return dx


def max_pool2d_grad(
    x: ArrayLike,
    dy: ArrayLike,
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding: str = "valid",
) -> np.ndarray:
    """Gradient of max pooling: each window's dy goes to its first maximal cell (row-major)."""
    return _pool_grad("max_pool2d", x, dy, pool_size, strides, padding, _core.max_pool2d_backward)


def max_pool2d_relu_grad(
    x: ArrayLike,
    dy: ArrayLike,
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding: str = "valid",
) -> np.ndarray:
    """Gradient of ``max_pool2d(relu(z))`` with respect to z, given ``x = relu(z)``.

    Equals ``relu_grad(x, max_pool2d_grad(x, dy, ...))`` in one pass over memory instead of two.
    """
    return _pool_grad(
        "max_pool2d",
        x,
        dy,
        pool_size,
        strides,
        padding,
        lambda xf, g, dx, *args: _core.max_pool2d_backward(xf, g, dx, *args, True),
    )


def conv2d_relu_max_pool_weight_grad(
    x: ArrayLike,
    kernel: ArrayLike,
    y: ArrayLike,
    pool_dy: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    pool_size: IntPair = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias gradients of ``max_pool2d(relu(conv2d(x, kernel) + bias), pool_size)``.

    ``y`` is the ReLU's output and ``pool_dy`` the pooling's output gradient; the pooling windows
    tile ``y`` (strides = pool_size, 'valid'). Equals the dkernel and dbias of ``conv2d_grad(x,
    kernel, max_pool2d_relu_grad(y, pool_dy, pool_size))`` without making the convolution's
    output gradient, the largest array of a first layer's backward pass: it is made a band of
    rows at a time, in cache. Built for few input channels (an image's 1 to 4).
    """
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    out = _numeric(y, "y")
    _expect_shape(out, "y", plan.out_shape, f"the conv2d output for x {plan.x.shape}")
    pool, (ph, pw) = _tiling_pool(out.shape, pool_size, "conv2d_relu_max_pool_weight_grad")
    g = _numeric(pool_dy, "pool_dy")
    _expect_shape(
        g,
        "pool_dy",
        (out.shape[0], ph, pw, out.shape[3]),
        f"the max_pool2d output for y {out.shape}",
    )
    return plan.weight_grads(
        lambda dk, db: _core.conv2d_backward_weight_through_max_pool(
            _f32(plan.x), _f32(out), _f32(g), dk, db, *plan.args(), pool
        )
    )


def avg_pool2d_grad(
    x: ArrayLike,
    dy: ArrayLike,
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding: str = "valid",
) -> np.ndarray:
    """Gradient of average pooling (it needs only the shape of x)."""
    return _pool_grad(
        "avg_pool2d",
        x,
        dy,
        pool_size,
        strides,
        padding,
        lambda _x, g, dx, *args: _core.avg_pool2d_backward(g, dx, *args),
    )


# ----------------------------------------------------------------------------------------------
# dense


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


# ----------------------------------------------------------------------------------------------
# losses fused with their final activation


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


# ----------------------------------------------------------------------------------------------
# optimizer updates (in place)


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
