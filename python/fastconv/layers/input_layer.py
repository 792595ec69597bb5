"""The model's input: ``InputLayer`` and ``Input(shape=...)``, its symbolic output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._tensor import KerasTensor
from .base import Layer, register_layer

__all__ = ["InputLayer", "Input"]


def _check_dims(shape, what):
    for s in shape:
        if s is None or isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
            raise ValueError(
                f"{what} must be a tuple of positive integers (batch axis excluded). "
                f"Received: {shape!r}"
            )


@register_layer
class InputLayer(Layer):
    """The layer behind ``Input(shape=...)``; its output is the model's symbolic input."""

    def __init__(
        self,
        shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        name: str | None = None,
        batch_shape: Sequence[int | None] | None = None,
        **kw: Any,
    ) -> None:
        input_shape = kw.pop("input_shape", None)
        kw.pop("sparse", None)
        kw.pop("ragged", None)
        super().__init__(name=name, dtype=dtype, **kw)
        if shape is None and input_shape is not None:
            shape = input_shape
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
            batch_shape = tuple(batch_shape)
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("You must pass a `shape` argument to Input / InputLayer.")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shape = tuple(shape)
        _check_dims(shape, "Input `shape`")
        self.batch_size = None if batch_size is None else int(batch_size)
        self._batch_shape = (self.batch_size,) + tuple(int(s) for s in shape)
        self.built = True
        self._build_input_shape = self._batch_shape
        self._output_shape = self._batch_shape
        self._outbound = KerasTensor(self._batch_shape, layer=self, parent=None, name=self.name)

    @property
    def batch_shape(self):
        """The input's shape, batch axis (``None``) first."""
        return self._batch_shape

    def compute_output_shape(self, input_shape):
        return self._batch_shape

    def forward(self, x, training=False):
        return x

    def backward(self, dy, need_dx=True):
        return dy

    def get_config(self):
        return {
            "batch_shape": list(self._batch_shape),
            "dtype": "float32",
            "name": self.name,
        }


def Input(  # noqa: N802
    shape: Sequence[int | None] | None = None,
    batch_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    batch_shape: Sequence[int | None] | None = None,
) -> KerasTensor:
    """Create a symbolic input tensor, as ``keras.Input``."""
    layer = InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape
    )
    return layer.output
