"""Symbolic tensors of the functional API (``Input(shape=...)`` makes the first one)."""

from __future__ import annotations

__all__ = ["KerasTensor"]


class KerasTensor:
    """A symbolic tensor: a shape (batch dimension ``None``) plus the layer that produced it.

    ``_keras_history`` is ``(layer, parent)`` where ``parent`` is the KerasTensor the layer was
    called on (``None`` for the output of an InputLayer).
    """

    def __init__(self, shape, dtype="float32", layer=None, parent=None, name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self._keras_history = (layer, parent)
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        layer = self._keras_history[0]
        src = f", source={layer.name}" if layer is not None else ""
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}{src}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A KerasTensor is symbolic: it cannot be converted to a NumPy array. Call the layer "
            "on a NumPy array, or build a Model and call predict()."
        )
