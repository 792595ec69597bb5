"""``Sequential``: a linear stack of layers, built as a functional model's chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._tensor import KerasTensor
from ..layers.base import Layer, register_model, serialize_layer
from ..layers.input_layer import InputLayer
from .model import Model

__all__ = ["Sequential"]


@register_model
class Sequential(Model):
    """A linear stack of layers: ``Sequential([layers...])`` and ``add(layer)``."""

    def __init__(
        self,
        layers: Sequence[Layer | KerasTensor] | None = None,
        name: str | None = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._seq = []
        self._input_layer = None
        for layer in layers or []:
            self.add(layer)

    @classmethod
    def _default_name(cls):
        return "sequential"

    @classmethod
    def _config_class_name(cls):
        return "Sequential"

    @property
    def layers(self) -> list[Layer]:
        """The model's layers in order (without the implicit InputLayer, as Keras)."""
        return list(self._seq)

    def add(self, layer: Layer | KerasTensor, rebuild: bool = True) -> None:
        """Adds a layer instance on top of the layer stack.

        Args:
            layer: layer instance (or the tensor of an ``Input``).
            rebuild: Whether to rebuild the model's graph now (when the input shape is known).
        """
        if isinstance(layer, KerasTensor) and isinstance(layer._keras_history[0], InputLayer):
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Only instances of `fastconv.layers.Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._seq:
                raise ValueError(
                    "An InputLayer / Input can only be added first to a Sequential model."
                )
            self._input_layer = layer
            self._connect_from(0)
            return
        if any(existing.name == layer.name for existing in self._seq):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model."
            )
        self._seq.append(layer)
        if self._input_layer is None and len(self._seq) == 1 and layer._input_shape_arg:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        if self._input_layer is not None:
            try:
                self._connect_from(len(self._seq) - 1)
            except Exception:
                self._seq.pop()
                layer._inbound = layer._outbound = None
                raise

    def _connect_from(self, start):
        t = self._input_layer.output if start == 0 else self._seq[start - 1].output
        for layer in self._seq[start:]:
            t = layer._connect(t)
        self._init_graph(self._input_layer.output, t)

    def pop(self) -> Layer:
        """Removes the last layer in the model and returns it."""
        if not self._seq:
            raise TypeError("There are no layers in the model.")
        layer = self._seq.pop()
        layer._inbound = layer._outbound = None
        if self._input_layer is not None:
            out = self._seq[-1].output if self._seq else self._input_layer.output
            self._init_graph(self._input_layer.output, out)
        return layer

    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        """Builds the model for ``input_shape`` (batch axis first), as Keras."""
        if self._graph_layers:
            return
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        input_shape = tuple(input_shape)
        self._input_layer = InputLayer(batch_shape=input_shape)
        self._connect_from(0)

    def get_config(self) -> dict[str, Any]:
        """Returns the config of the model: its name and its layers' configs."""
        layers = ([self._input_layer] if self._input_layer is not None else []) + self._seq
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize_layer(layer) for layer in layers],
        }
