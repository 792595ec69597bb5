"""Convolution: forward (bias and ReLU fused), the first layer fused with its max pooling,
and the gradients."""

from __future__ import annotations

import numpy as np

from fastconv import _core

from ._checks import (
    ArrayLike,
    IntPair,
    _activation,
    _empty,
    _expect_shape,
    _f32,
    _geometry,
    _image,
    _numeric,
    _padding,
    _pair,
    _rank,
)

__all__ = ["conv2d", "conv2d_max_pool", "conv2d_grad"]


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
    return _forward(plan, plan.x, plan.kernel, plan.checked_bias(bias), relu_fused)


def _forward(plan: _ConvPlan, x, kernel, b, relu: bool) -> np.ndarray:
    """conv2d's output for inputs of ``plan``'s shapes and a checked bias ``b`` (conv2d, and
    bind_conv2d's calls)."""
    y = _empty(plan.out_shape, "conv2d output")
    if y.size:
        _core.conv2d_forward(_f32(x), _f32(kernel), b, y, *plan.args(), relu)
    return y


def _forward_max_pool(
    plan: _ConvPlan, x, kernel, b, relu: bool, pool, pooled_shape, y=None, argmax=None
) -> np.ndarray:
    """conv2d_max_pool's pooled output for inputs of ``plan``'s shapes and a checked bias
    ``b``, filling ``y`` (the conv output) and ``argmax`` when given (conv2d_max_pool, and
    bind_conv2d's calls)."""
    pooled = _empty(pooled_shape, "max_pool2d output")
    # Where the conv output is not kept and the two passes run (no pooled Winograd), it goes
    # to a buffer of the model's memory plan inside its steps: reused, and released with it.
    scratch = None
    if y is None and plan.kernel.shape[2] > _core.few_channel_max:
        scratch = _empty(plan.out_shape, "conv2d_max_pool scratch")
    if pooled.size or (y is not None and y.size):
        _core.conv2d_forward_max_pool(
            _f32(x), _f32(kernel), b, y, pooled, plan.out_shape[1:3], *plan.args(), pool, relu,
            argmax, scratch,
        )  # fmt: skip
    return pooled


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
    return_argmax: bool = False,
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(y, max_pool2d(y, pool_size))`` for ``y = conv2d(x, kernel, bias, ...)``, in one pass.

    The pooling windows tile y (strides = pool_size, 'valid'). Each band of y's rows under a row
    of windows is pooled while in cache, instead of y being read again from memory: for layers
    with few input channels (an image's 1 to 4), whose output is the largest of a model. With
    ``keep_conv_output=False`` (inference) y is not kept (None), and where the convolution runs
    Winograd (see ``fastconv.set_conv_algorithm``) under a 2x2 pooling, each 2x2 output tile is
    pooled in the output transform, so y is never made. Other layers take the two passes.

    With ``return_argmax=True``: ``(argmax, pooled)``, y not kept; ``argmax`` (uint8, the shape
    of ``pooled``) holds each pooled value's first maximal cell of its window (row-major), or
    255 where the activation is ReLU and the maximum is not > 0: all that the gradient needs
    (``max_pool2d_grad_from_argmax``, ``conv2d_max_pool_weight_grad_from_argmax``), a sixteenth
    of y's bytes under 2x2 windows.
    """
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    relu_fused = _activation(activation)
    b = plan.checked_bias(bias)
    pool, (ph, pw) = _tiling_pool(plan.out_shape, pool_size, "conv2d_max_pool")
    pooled_shape = (plan.out_shape[0], ph, pw, plan.out_shape[3])
    keep_conv_output = keep_conv_output and not return_argmax
    y = _empty(plan.out_shape, "conv2d output") if keep_conv_output else None
    argmax = _empty(pooled_shape, "conv2d_max_pool argmax", np.uint8) if return_argmax else None
    pooled = _forward_max_pool(
        plan, plan.x, plan.kernel, b, relu_fused, pool, pooled_shape, y, argmax
    )
    return (argmax, pooled) if return_argmax else (y, pooled)


def bind_conv2d(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    activation: str | None = None,
    pool_size: IntPair | None = None,
):
    """``(call, out_shape)``: ``call(x, kernel, bias)`` is ``conv2d`` (with ``pool_size``: the
    pooled output of ``conv2d_max_pool`` without the conv output) for inputs of shape
    ``x_shape``, its geometry validated here once. For predict's runner, which
    calls each layer batch after batch: Python between kernels costs more than its own time, as
    OpenMP workers fall asleep and must be woken for the next kernel. The kernel binding still
    checks every shape (a wrong one raises, never reads out of bounds)."""
    # Placeholders of the shapes that hold no memory (the calls keep the plan).
    plan = _ConvPlan(
        np.broadcast_to(np.float32(0), x_shape),
        np.broadcast_to(np.float32(0), kernel_shape),
        strides,
        padding,
        dilation_rate,
    )
    relu = _activation(activation)
    conv_shape = plan.out_shape
    if pool_size is None:

        def conv(x, kernel, bias):
            return _forward(plan, x, kernel, plan.checked_bias(bias), relu)

        return conv, conv_shape
    pool, (ph, pw) = _tiling_pool(conv_shape, pool_size, "conv2d_max_pool")
    pooled_shape = (conv_shape[0], ph, pw, conv_shape[3])

    def conv_max_pool(x, kernel, bias):
        b = plan.checked_bias(bias)
        return _forward_max_pool(plan, x, kernel, b, relu, pool, pooled_shape)

    return conv_max_pool, pooled_shape


def conv2d_grad(
    x: ArrayLike,
    kernel: ArrayLike,
    dy: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: str = "valid",
    dilation_rate: IntPair = 1,
    need_dx: bool = True,
    need_weight_grads: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dkernel, dbias) of a convolution given the output gradient ``dy``.

    ``need_dx=False`` skips the input gradient (the first layer of a model needs none) and
    returns None in its place; ``need_weight_grads=False`` skips the weight gradients (a frozen
    layer, or input-space gradients for visualisation) and returns None for both.
    """
    plan = _ConvPlan(x, kernel, strides, padding, dilation_rate)
    g = _numeric(dy, "dy")
    _expect_shape(g, "dy", plan.out_shape, f"the conv2d output for x {plan.x.shape}")
    xf, kf, gf = _f32(plan.x), _f32(plan.kernel), _f32(g)
    dx = _empty(plan.x.shape, "conv2d dx") if need_dx else None
    if dx is not None and dx.size:
        _core.conv2d_backward_input(gf, kf, dx, *plan.args())
    if not need_weight_grads:
        return dx, None, None
    dkernel, dbias = plan.weight_grads(
        lambda dk, db: _core.conv2d_backward_weight(xf, gf, dk, db, *plan.args())
    )
    return dx, dkernel, dbias
