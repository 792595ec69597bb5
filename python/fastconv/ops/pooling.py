"""Max and average pooling, forward and backward (the ReLU mask folded into max pooling's),
and the first layer's weight gradient straight from its pooling's gradient."""

from __future__ import annotations

import numpy as np

from fastconv import _core

from ._checks import (
    ArrayLike,
    IntPair,
    _empty,
    _expect_shape,
    _f32,
    _geometry,
    _image,
    _numeric,
    _padding,
    _pair,
)
from .conv import _ConvPlan, _tiling_pool

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_grad",
    "max_pool2d_relu_grad",
    "conv2d_relu_max_pool_weight_grad",
    "max_pool2d_grad_from_argmax",
    "conv2d_max_pool_weight_grad_from_argmax",
    "avg_pool2d_grad",
]


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


def _argmax_tape(argmax: ArrayLike, dy_shape: tuple[int, ...]) -> np.ndarray:
    tape = np.asarray(argmax)
    if tape.dtype != np.uint8:
        raise TypeError(f"argmax must be the uint8 array conv2d_max_pool made, got {tape.dtype}")
    _expect_shape(tape, "argmax", dy_shape, "the pooled output's")
    return np.ascontiguousarray(tape)


def max_pool2d_grad_from_argmax(
    argmax: ArrayLike, dy: ArrayLike, x_shape: tuple[int, ...], pool_size: IntPair = 2
) -> np.ndarray:
    """The gradient of a non-overlapping 'valid' max pooling (strides = pool_size) of an input
    of ``x_shape``, from the ``argmax`` tape of ``conv2d_max_pool(..., return_argmax=True)``:
    each window's dy goes to the cell the forward pass chose (nothing where it recorded 255),
    0 elsewhere. The input itself is not needed."""
    shape = tuple(int(d) for d in x_shape)
    if len(shape) != 4:
        raise ValueError(f"x_shape must be (batch, height, width, channels), got {x_shape!r}")
    pool, (ph, pw) = _tiling_pool(shape, pool_size, "max_pool2d_grad_from_argmax")
    g = _numeric(dy, "dy")
    _expect_shape(g, "dy", (shape[0], ph, pw, shape[3]), f"the max_pool2d output for {shape}")
    tape = _argmax_tape(argmax, g.shape)
    dx = _empty(shape, "max_pool2d_grad_from_argmax output")
    if dx.size:
        _core.max_pool2d_backward_argmax(tape, _f32(g), dx, pool)
    return dx


def conv2d_max_pool_weight_grad_from_argmax(
    x: ArrayLike,
    kernel: ArrayLike,
    argmax: ArrayLike,
    pool_dy: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    pool_size: IntPair = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """``conv2d_relu_max_pool_weight_grad`` from the ``argmax`` tape of ``conv2d_max_pool(...,
    return_argmax=True)`` instead of the convolution's output: the kernel and bias gradients of
    the pooled convolution (ReLU or linear, as the tape was made), its output gradient made a
    band of rows at a time in cache and never written out."""
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    pool, (ph, pw) = _tiling_pool(plan.out_shape, pool_size, "conv2d_max_pool_weight_grad")
    g = _numeric(pool_dy, "pool_dy")
    pooled_shape = (plan.out_shape[0], ph, pw, plan.out_shape[3])
    _expect_shape(g, "pool_dy", pooled_shape, f"the pooled conv2d output for x {plan.x.shape}")
    tape = _argmax_tape(argmax, pooled_shape)
    return plan.weight_grads(
        lambda dk, db: _core.conv2d_backward_weight_through_max_pool_argmax(
            _f32(plan.x), tape, _f32(g), dk, db, plan.out_shape[1:3], *plan.args(), pool
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
