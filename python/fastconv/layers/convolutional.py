"""2-D convolution (NHWC, kernel (kh, kw, in, out))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import activations as _act
from .. import initializers as _init
from .. import ops
from ..ops.conv import bind_conv2d
from .base import (
    Layer,
    format_shape,
    normalize_padding,
    normalize_tuple,
    op_arg,
    register_layer,
    require_tape,
)

__all__ = ["Conv2D"]


@register_layer
class Conv2D(Layer):
    """2-D convolution layer, Keras arguments and defaults (channels_last only)."""

    _ndim = 4

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = 1,
        activation: str | Callable[..., Any] | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        groups = kwargs.pop("groups", 1)
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(
                f"Invalid value for argument `filters`. Expected a strictly positive value. "
                f"Received filters={filters!r}."
            )
        if data_format not in (None, "channels_last"):
            raise ValueError("fastconv supports only data_format='channels_last' (NHWC)")
        if groups != 1:
            raise ValueError("fastconv Conv2D supports only groups=1")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = normalize_tuple(strides, 2, "strides")
        self.padding = normalize_padding(padding)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.activation = _act.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init.get(kernel_initializer)
        self.bias_initializer = _init.get(bias_initializer)
        self._x = self._y = None  # the tape of forward, read by backward

    def op_kwargs(self) -> dict[str, Any]:
        """This layer's strides, padding and dilation as ``ops.conv2d`` takes them."""
        return dict(
            strides=op_arg(self.strides),
            padding=self.padding,
            dilation_rate=op_arg(self.dilation_rate),
        )

    def build(self, input_shape):
        cin = input_shape[-1]
        if cin is None:
            raise ValueError(f"The channel dimension of the input to '{self.name}' must be known")
        self.add_weight(
            "kernel", self.kernel_size + (int(cin), self.filters), self.kernel_initializer
        )
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        else:
            self.bias = None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if h is None or w is None:
            return (n, None, None, self.filters)
        try:
            oh, ow = ops.conv2d_output_shape(
                (int(h), int(w)), op_arg(self.kernel_size), **self.op_kwargs()
            )
        except ValueError:
            raise ValueError(
                f"Computed output size would be negative or zero for layer '{self.name}': input "
                f"shape {format_shape(input_shape)}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, padding='{self.padding}', "
                f"dilation_rate={self.dilation_rate}. The input is too small for this layer."
            ) from None
        return (n, int(oh), int(ow), self.filters)

    def forward(self, x, training=False):
        fused = "relu" if self.activation == "relu" else None
        z = ops.conv2d(x, self.kernel, self.bias, activation=fused, **self.op_kwargs())
        self._x = x
        if self.activation in ("linear", "relu"):
            self.preactivation = None
            y = z
        else:
            self.preactivation = z
            y = _act.apply(self.activation, z)
        self._y = y
        return y

    def inference_call(self, input_shape):
        # A subclass's own forward, or an activation the kernel does not fuse: forward runs.
        if type(self).forward is not Conv2D.forward or self.activation not in ("linear", "relu"):
            return None
        bound_config = self.inference_config()
        conv, _ = bind_conv2d(input_shape, self.kernel.shape, **bound_config)

        def call(x):
            if self.inference_config() != bound_config:  # changed since bound: the plain path
                y = self.forward(x, training=False)
                self.release_tape()
                return y
            return conv(x, self.kernel, self.bias)

        return call

    def inference_config(self) -> dict[str, Any]:
        """What a bound inference call fixes besides the input shape: the fused activation and
        the geometry (``bind_conv2d``'s keywords)."""
        return dict(activation="relu" if self.activation == "relu" else None, **self.op_kwargs())

    def backward(self, dy, need_dx=True):
        require_tape(self._y, self)
        if self.activation == "relu":
            dz = ops.relu_grad(self._y, dy)
        else:
            dz = _act.gradient(self.activation, self._y, dy)
        return self.backward_preactivation(dz, need_dx)

    def backward_preactivation(self, dz, need_dx=True):
        require_tape(self._x, self)
        return self.preactivation_grad(self._x, dz, need_dx)

    def preactivation_grad(self, x, dz, need_dx=True):
        """Weight gradients (kept in ``grads``) and, with ``need_dx``, the input gradient, for
        input ``x`` and the gradient ``dz`` of the pre-activation output: the backward pass of
        an execution step that ran this convolution itself. A frozen layer
        (``trainable=False``) computes no weight gradients."""
        dx, dk, db = ops.conv2d_grad(
            x,
            self.kernel,
            dz,
            need_dx=bool(need_dx),
            need_weight_grads=self.trainable,
            **self.op_kwargs(),
        )
        if self.trainable:
            self.set_gradients(dk, db)
        return dx if need_dx else None

    def set_gradients(self, kernel_grad, bias_grad) -> None:
        """Stores kernel and bias gradients computed elsewhere (by a fused step of the plan)."""
        self.grads["kernel"] = kernel_grad
        if self.use_bias:
            self.grads["bias"] = bias_grad

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            data_format="channels_last",
            dilation_rate=list(self.dilation_rate),
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=_init.serialize(self.kernel_initializer),
            bias_initializer=_init.serialize(self.bias_initializer),
        )
        return cfg
