"""2-D max and average pooling (NHWC)."""

from __future__ import annotations

from typing import Any

from .. import ops
from .base import (
    Layer,
    format_shape,
    normalize_padding,
    normalize_tuple,
    op_arg,
    register_layer,
    require_tape,
)

__all__ = ["MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D"]


class _Pooling2D(Layer):
    _ndim = 4
    _fwd = None
    _bwd = None

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("fastconv supports only data_format='channels_last' (NHWC)")
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides")
        self.padding = normalize_padding(padding)

    def op_kwargs(self) -> dict[str, Any]:
        """pool_size, strides and padding as ``ops.max_pool2d`` / ``avg_pool2d`` take them."""
        return dict(
            pool_size=op_arg(self.pool_size), strides=op_arg(self.strides), padding=self.padding
        )

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        if h is None or w is None:
            return (n, None, None, c)
        try:
            oh, ow = ops.pool2d_output_shape((int(h), int(w)), **self.op_kwargs())
        except ValueError:
            raise ValueError(
                f"Computed output size would be negative or zero for layer '{self.name}': input "
                f"shape {format_shape(input_shape)}, pool_size={self.pool_size}, "
                f"strides={self.strides}, padding='{self.padding}'."
            ) from None
        return (n, int(oh), int(ow), c)

    def forward(self, x, training=False):
        self._x = x
        return type(self)._fwd(x, **self.op_kwargs())

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        require_tape(self._x, self)
        return type(self)._bwd(self._x, dy, **self.op_kwargs())

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            pool_size=list(self.pool_size),
            strides=list(self.strides),
            padding=self.padding,
            data_format="channels_last",
        )
        return cfg


@register_layer
class MaxPooling2D(_Pooling2D):
    """Max pooling; strides default to pool_size; 'same' ignores padded cells."""

    _fwd = staticmethod(lambda x, **kw: ops.max_pool2d(x, **kw))
    _bwd = staticmethod(lambda x, dy, **kw: ops.max_pool2d_grad(x, dy, **kw))


@register_layer
class AveragePooling2D(_Pooling2D):
    """Average pooling; 'same' averages only the cells inside the image."""

    _fwd = staticmethod(lambda x, **kw: ops.avg_pool2d(x, **kw))
    _bwd = staticmethod(lambda x, dy, **kw: ops.avg_pool2d_grad(x, dy, **kw))


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
