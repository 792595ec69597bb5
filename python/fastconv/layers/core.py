"""Core layers: Dense, Flatten, Activation, ReLU, Softmax, Dropout, Rescaling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _random, ops
from .. import activations as _act
from .. import initializers as _init
from .base import Layer, register_layer

__all__ = [
    "Dense",
    "Flatten",
    "Activation",
    "ReLU",
    "Softmax",
    "Dropout",
    "Rescaling",
]


@register_layer
class Dense(Layer):
    """Densely connected layer on the last axis: ``activation(x @ kernel + bias)``."""

    _min_ndim = 2

    def __init__(
        self,
        units: int,
        activation: str | Callable[..., Any] | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Received an invalid value for `units`, expected a positive integer. "
                f"Received: units={units!r}"
            )
        self.units = int(units)
        self.activation = _act.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init.get(kernel_initializer)
        self.bias_initializer = _init.get(bias_initializer)

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(
                f"The last dimension of the input to Dense '{self.name}' must be known"
            )
        self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        else:
            self.bias = None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _rows_and_outputs(self, x):
        """(x as 2-D rows, the pre-activation, the output) of this layer, rows shaped."""
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        fused = "relu" if self.activation == "relu" else None
        z = ops.dense(x2, self.kernel, self.bias, activation=fused)
        y = z if self.activation in ("linear", "relu") else _act.apply(self.activation, z)
        return x2, z, y

    def forward(self, x, training=False):
        self._in_shape = x.shape
        x2, z, y = self._rows_and_outputs(x)
        self.preactivation = None if y is z else z
        self._x, self._y = x2, y
        return y.reshape(x.shape[:-1] + (self.units,)) if x.ndim != 2 else y

    def inference_call(self, input_shape):
        if type(self).forward is not Dense.forward:  # a subclass's own forward runs
            return None

        def call(x):  # forward without its tape
            y = self._rows_and_outputs(x)[2]
            return y.reshape(x.shape[:-1] + (self.units,)) if x.ndim != 2 else y

        return call

    def backward(self, dy, need_dx=True):
        dy = dy.reshape(self._y.shape)
        if self.activation == "relu":
            dz = ops.relu_grad(self._y, dy)
        else:
            dz = _act.gradient(self.activation, self._y, dy)
        return self.backward_preactivation(dz, need_dx)

    def backward_preactivation(self, dz, need_dx=True):
        dz = np.ascontiguousarray(dz, dtype=np.float32).reshape(self._y.shape)
        dx, dk, db = ops.dense_grad(self._x, self.kernel, dz)
        self.grads["kernel"] = dk
        if self.use_bias:
            self.grads["bias"] = db
        if not need_dx:
            return None
        return dx.reshape(self._in_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=_init.serialize(self.kernel_initializer),
            bias_initializer=_init.serialize(self.bias_initializer),
        )
        return cfg


@register_layer
class Flatten(Layer):
    """Flattens each sample (NHWC in (h, w, c) order, as Keras)."""

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("fastconv supports only data_format='channels_last'")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(s is None for s in rest) else int(math.prod(rest))
        return (input_shape[0], n)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def inference_call(self, input_shape):
        if type(self).forward is not Flatten.forward:  # a subclass's own forward runs
            return None
        return lambda x: x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._shape) if need_dx else None


@register_layer
class Activation(Layer):
    """Applies an activation function by name."""

    def __init__(self, activation: str | Callable[..., Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = _act.get(activation)

    def forward(self, x, training=False):
        self.preactivation = x
        y = _act.apply(self.activation, x)
        self._y = y
        return y

    def backward(self, dy, need_dx=True):
        return _act.gradient(self.activation, self._y, dy) if need_dx else None

    def backward_preactivation(self, dz, need_dx=True):
        return dz if need_dx else None

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg


@register_layer
class ReLU(Layer):
    """Rectified linear unit, with Keras' optional max_value / negative_slope / threshold."""

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"max_value of a ReLU layer cannot be negative. Received: {max_value}")
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"negative_slope of a ReLU layer must be >= 0: {negative_slope}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def _plain(self):
        return self.max_value is None and self.negative_slope == 0.0 and self.threshold == 0.0

    def forward(self, x, training=False):
        if self._plain():
            y = ops.relu(x)
            self._y = y
            return y
        self._x = x
        y = np.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            y = np.minimum(y, self.max_value)
        return y.astype(np.float32)

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        if self._plain():
            return ops.relu_grad(self._y, dy)
        x = self._x
        g = np.where(x >= self.threshold, 1.0, self.negative_slope)
        if self.max_value is not None:
            g = np.where(x >= self.max_value, 0.0, g)
        return (dy * g).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            max_value=self.max_value, negative_slope=self.negative_slope, threshold=self.threshold
        )
        return cfg


@register_layer
class Softmax(Layer):
    """Softmax over ``axis`` (default last)."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)

    @property
    def output_activation(self):
        """``"softmax"`` (over the last axis) fuses with a crossentropy loss."""
        return "softmax" if self.axis == -1 else None

    def forward(self, x, training=False):
        self.preactivation = x
        y = _act.apply("softmax", x, axis=self.axis)
        self._y = y
        return y

    def backward(self, dy, need_dx=True):
        return _act.gradient("softmax", self._y, dy, axis=self.axis) if need_dx else None

    def backward_preactivation(self, dz, need_dx=True):
        return dz if need_dx else None

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


@register_layer
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of inputs while training (scaling the rest by 1/(1-rate))."""

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(
                f"Invalid value received for argument `rate`. Expected a float value between 0 "
                f"and 1. Received: rate={rate!r}"
            )
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if self.rate >= 1.0:
            self._mask = np.zeros_like(x)
            return self._mask.copy()
        rng = self._rng if self._rng is not None else _random.get_rng()
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = rng.random(shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(np.float32) * np.float32(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            rate=self.rate,
            noise_shape=None if self.noise_shape is None else list(self.noise_shape),
            seed=self.seed,
        )
        return cfg


@register_layer
class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1.0 / 255)``)."""

    def __init__(
        self, scale: float | np.ndarray, offset: float | np.ndarray = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.scale = float(scale)
            self.offset = float(offset)
        except (TypeError, ValueError):
            raise ValueError(
                f"Rescaling expects scalar `scale` and `offset`. Received: {scale!r}, {offset!r}"
            ) from None

    def forward(self, x, training=False):
        y = x * np.float32(self.scale)
        if self.offset:
            y += np.float32(self.offset)
        return y

    def inference_call(self, input_shape):
        if type(self).forward is not Rescaling.forward:  # a subclass's own forward runs
            return None
        return self.forward  # keeps no tape

    def backward(self, dy, need_dx=True):
        return dy * np.float32(self.scale) if need_dx else None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(scale=self.scale, offset=self.offset)
        return cfg
