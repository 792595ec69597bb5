"""The Layer base class.

Protocol used by the models (and by layers defined elsewhere, e.g. augmentation layers):

* ``build(input_shape)`` creates the weights with :meth:`Layer.add_weight` (``input_shape`` has the
  batch dimension first, ``None`` when unknown).
* ``forward(x, training)`` computes the output of a float32 batch and stores what ``backward`` needs
  (its "tape").
* ``backward(dy, need_dx=True)`` consumes the tape, stores the weight gradients in ``self.grads``
  (a dict weight-name -> array) and returns ``dx`` (or ``None`` when ``need_dx`` is False).
  Layers without weights that are never differentiated (e.g. augmentation at the model input)
  may leave the default, which raises.
* ``compute_output_shape(input_shape)``; ``get_config()`` / ``from_config(config)``.

Layers whose output ends with an activation that a loss can fuse with (softmax, sigmoid) report it
in ``output_activation`` and implement ``backward_preactivation(dz, need_dx)``; the model then
feeds the loss the layer's stored ``preactivation`` (the logits) instead of its probabilities.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._registry import to_snake_case
from .._tensor import KerasTensor
from ..ops.core import eager

__all__ = [
    "Layer",
    "register_layer",
    "register_model",
    "serialize_layer",
    "LAYER_REGISTRY",
    "MODEL_REGISTRY",
    "clear_session",
]

# class name -> class; only fastconv's own layers register here (model loading accepts only these)
LAYER_REGISTRY: dict[str, type] = {}
MODEL_REGISTRY: dict[str, type] = {}  # configuration class name -> model class

_NAME_COUNTS: dict[str, int] = {}
_WEIGHT_BUDGET: list = [None]  # remaining number of weight elements allowed (set while loading)


def register_layer(cls):
    """Class decorator: make a fastconv layer class loadable by name from a model file."""
    LAYER_REGISTRY[cls.__name__] = cls
    return cls


def register_model(cls):
    """Class decorator: make a model class loadable under its configuration's class name
    (``Functional``, ``Sequential``); model files name no other model classes."""
    MODEL_REGISTRY[cls._config_class_name()] = cls
    return cls


def serialize_layer(layer) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a layer or a nested model, as a model file stores it."""
    return {"class_name": type(layer)._config_class_name(), "config": layer.get_config()}


def clear_session():
    """Reset the automatic layer-name counters (as ``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def unique_name(base: str) -> str:
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


@contextlib.contextmanager
def weight_budget(n_elements: int):
    """While active, ``add_weight`` refuses to allocate more than ``n_elements`` in total."""
    old = _WEIGHT_BUDGET[0]
    _WEIGHT_BUDGET[0] = int(n_elements)
    try:
        yield
    finally:
        _WEIGHT_BUDGET[0] = old


def format_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def normalize_tuple(value, n, name, allow_zero=False):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        value = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"The `{name}` argument must be an int or a tuple of {n} ints. Received: {value!r}"
        ) from None
    if len(value) != n or any(v < (0 if allow_zero else 1) for v in value):
        raise ValueError(
            f"The `{name}` argument must be a tuple of {n} positive integers. Received: {value!r}"
        )
    return value


def op_arg(pair):
    """Pass an int to ``ops`` when both entries agree (the common case), else the tuple."""
    return pair[0] if pair[0] == pair[1] else pair


def require_tape(tape, layer) -> None:
    """predict and evaluate keep no activation that only the backward pass reads."""
    if tape is None:
        raise RuntimeError(
            f"layer '{layer.name}': backward needs the activations of forward(x) (predict and "
            "evaluate do not keep them); run forward first"
        )


def normalize_padding(padding):
    p = str(padding).lower()
    if p not in ("valid", "same"):
        raise ValueError(
            f"The `padding` argument must be one of 'valid', 'same'. Received: padding={padding!r}"
        )
    return p


class Layer:
    """Base class of all fastconv layers (Keras-shaped)."""

    # subclasses: minimum / exact input rank including the batch axis (checked on connect)
    _min_ndim: int | None = None
    _ndim: int | None = None

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Sequence[int | None] | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("autocast", "input_dim", "batch_input_shape"):
            kwargs.pop(key, None)
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        if dtype not in (None, "float32", np.float32) and getattr(dtype, "name", "") != "float32":
            if not (isinstance(dtype, dict) and dtype.get("config", {}).get("name") == "float32"):
                raise ValueError(
                    f"fastconv layers compute in float32 only. Received: dtype={dtype}"
                )
        if name is None:
            name = unique_name(to_snake_case(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise ValueError(f"Layer name must be a non-empty string. Received: name={name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.built = False
        self.grads: dict[str, np.ndarray] = {}
        self._weight_names: list[tuple[str, bool]] = []
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self._build_input_shape = None
        self._output_shape = None
        self._inbound = None  # KerasTensor this layer was connected to (functional API)
        self._outbound = None

    # ------------------------------------------------------------------ weights
    def add_weight(
        self,
        name: str,
        shape: Sequence[int],
        initializer: Any = "zeros",
        trainable: bool = True,
    ) -> np.ndarray:
        """Add a weight variable to the layer.

        Args:
            name: String, the name for the variable (also the attribute that holds it).
            shape: shape tuple of the variable.
            initializer: Initializer object to use to populate the initial variable value, or
                string name of a built-in initializer (e.g. ``"glorot_uniform"``). Defaults to
                ``"zeros"``.
            trainable: Boolean, whether the variable should be trainable via backprop or whether
                its updates are managed manually. Defaults to ``True``.

        Returns:
            The new float32 NumPy array.
        """
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"Layer '{self.name}': invalid weight shape {shape} for {name!r}")
        size = math.prod(shape)
        if _WEIGHT_BUDGET[0] is not None:
            if size > _WEIGHT_BUDGET[0]:
                raise ValueError(
                    f"Layer '{self.name}' would create weight {name!r} of shape {shape}, larger "
                    "than the weights stored in the model file"
                )
            _WEIGHT_BUDGET[0] -= size
            value = np.zeros(shape, dtype=np.float32)
        else:
            value = np.ascontiguousarray(_initializers.get(initializer)(shape), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(
                    f"Initializer for {name!r} returned shape {value.shape}, not {shape}"
                )
        setattr(self, name, value)
        self._weight_names.append((name, bool(trainable)))
        return value

    @property
    def weights(self):
        """List of all weight variables of the layer (NumPy arrays), in creation order."""
        return [getattr(self, n) for n, _ in self._weight_names]

    @property
    def trainable_weights(self):
        """List of all trainable weight variables of the layer."""
        if not self.trainable:
            return []
        return [getattr(self, n) for n, t in self._weight_names if t]

    @property
    def non_trainable_weights(self):
        """List of all non-trainable weight variables of the layer."""
        if not self.trainable:
            return self.weights
        return [getattr(self, n) for n, t in self._weight_names if not t]

    def _trainable_weights_and_grads(self):
        """[(weight, grad)] for the trainable weights, grads from the last backward."""
        if not self.trainable:
            return []
        return [(getattr(self, n), self.grads.get(n)) for n, t in self._weight_names if t]

    @property
    def has_trainable_weights(self):
        """Whether the layer has weights an optimizer updates."""
        return bool(self.trainable_weights)

    def get_weights(self) -> list[np.ndarray]:
        """Return the values of ``layer.weights`` as a list of NumPy arrays (copies)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets the values of ``layer.weights`` from a list of NumPy arrays (shapes checked)."""
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"Layer {self.name!r} expected {len(params)} variables, but received "
                f"{len(weights)} variables during loading. Expected: "
                f"{[tuple(p.shape) for p in params]}"
            )
        arrays = []
        for (wname, _), p, w in zip(self._weight_names, params, weights):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(
                    f"Layer {self.name!r} weight shape {p.shape} is not compatible with provided "
                    f"weight shape {w.shape} (weight {wname!r})."
                )
            arrays.append(w)
        for p, w in zip(params, arrays):
            np.copyto(p, w, casting="unsafe")  # in place: optimizer state stays attached

    def count_params(self) -> int:
        """Count the total number of scalars composing the weights."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------------ shapes
    def build(self, input_shape: Sequence[int | None]) -> None:
        """Creates the layer's weights for ``input_shape`` (batch axis first), once."""
        self._build_input_shape = tuple(input_shape)
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True
            if self._build_input_shape is None:
                self._build_input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """The layer's output shape for ``input_shape`` (batch axis first)."""
        return tuple(input_shape)

    def _incompatible(self, msg, shape):
        return ValueError(
            f'Input 0 of layer "{self.name}" is incompatible with the layer: {msg}. '
            f"Full shape received: {format_shape(shape)}"
        )

    def check_input_shape(self, shape):
        """Raise a Keras-like ValueError when ``shape`` (batch first) cannot feed this layer."""
        shape = tuple(shape)
        if self._ndim is not None and len(shape) != self._ndim:
            raise self._incompatible(f"expected ndim={self._ndim}, found ndim={len(shape)}", shape)
        if self._min_ndim is not None and len(shape) < self._min_ndim:
            raise self._incompatible(
                f"expected min_ndim={self._min_ndim}, found ndim={len(shape)}", shape
            )
        built = self._build_input_shape
        if self.built and built is not None and self.weights:
            if len(built) != len(shape):
                raise self._incompatible(
                    f"expected ndim={len(built)}, found ndim={len(shape)}", shape
                )
            if built[-1] is not None and shape[-1] is not None and built[-1] != shape[-1]:
                raise self._incompatible(
                    f"expected axis -1 of input shape to have value {built[-1]}, "
                    f"but received input with shape {format_shape(shape)}",
                    shape,
                )

    # ------------------------------------------------------------------ compute
    def call(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        """Computes the layer's output for a float32 batch (``training`` turns on dropout and
        augmentation)."""
        if type(self).forward is Layer.forward:
            raise NotImplementedError(f"Layer {type(self).__name__} does not implement call()")
        return self.forward(inputs, training=training)

    def forward(self, x, training=False):
        """Compute the output and keep what ``backward`` needs (default: delegate to ``call``)."""
        return self.call(x, training=training)

    def backward(self, dy, need_dx=True):
        """Backpropagates ``dy`` (the gradient of the output) from the tape ``forward`` kept: weight
        gradients go into ``self.grads``; returns the input gradient when ``need_dx``."""
        raise NotImplementedError(f"Layer {type(self).__name__} ({self.name}) has no backward()")

    def inference_call(
        self, input_shape: tuple[int, ...]
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        """This layer's inference forward pass bound to inputs of ``input_shape``, its
        arguments checked once: for predict's runner (``models/plan.py``), which calls it batch
        after batch and keeps no tape. The call must take any array of that shape (a user's
        layer before it may pass float64), read the weights when called, and run ``forward``
        if the layer's settings changed since it was bound. None (the default): the runner
        calls ``forward``."""
        return None

    # fusion protocol (see module docstring)
    preactivation = None

    @property
    def output_activation(self) -> str | None:
        """``"softmax"``/``"sigmoid"`` when the layer's ``activation`` can fuse with a loss."""
        activation = getattr(self, "activation", None)
        return activation if activation in ("softmax", "sigmoid") else None

    # What forward keeps for backward (its tape), by attribute name: release_tape drops it.
    _TAPE_ATTRIBUTES = ("_x", "_y", "preactivation", "_mask", "_tape")

    def release_tape(self) -> None:
        """Drop what forward kept for backward, once no backward pass will read it (the
        execution plan calls this after a training step's backward and during inference), so
        the memory returns to the step's buffer pool at once."""
        for name in self._TAPE_ATTRIBUTES:
            if name in self.__dict__:
                setattr(self, name, None)

    def backward_preactivation(self, dz, need_dx=True):
        """As ``backward``, from the gradient of the pre-activation (a loss fused with this layer's
        activation)."""
        raise NotImplementedError

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"Unexpected arguments to {self.name}: {sorted(kwargs)}")
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            inputs = inputs[0]
        if isinstance(inputs, KerasTensor):
            return self._connect(inputs)
        x = np.asarray(inputs)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        self.check_input_shape((None,) + x.shape[1:] if x.ndim else x.shape)
        self._maybe_build((None,) + x.shape[1:])
        # None lets each layer use its own default, as Keras 3 does: augmentation layers called
        # directly augment, Dropout called directly does not. The output answers `.numpy()` as
        # the listings' TensorFlow tensors do (ops/core.py).
        return eager(self.forward(np.ascontiguousarray(x), training=training))

    def _connect(self, tensor):
        if self._inbound is not None:
            raise ValueError(
                f"Layer '{self.name}' has already been called on a tensor: fastconv models do not "
                "support calling one layer instance several times (shared layers)."
            )
        self.check_input_shape(tensor.shape)
        self._maybe_build(tensor.shape)
        out_shape = tuple(self.compute_output_shape(tensor.shape))
        self._inbound = tensor
        self._output_shape = out_shape
        self._outbound = KerasTensor(out_shape, layer=self, parent=tensor)
        return self._outbound

    @property
    def input(self):
        """The symbolic input tensor of the layer (once called on one)."""
        if self._inbound is None:
            raise AttributeError(f"Layer '{self.name}' has never been called and has no input.")
        return self._inbound

    @property
    def output(self):
        """The symbolic output tensor of the layer (once called on one)."""
        if self._outbound is None:
            raise AttributeError(f"Layer '{self.name}' has never been called and has no output.")
        return self._outbound

    @property
    def output_shape(self):
        """The layer's output shape, batch axis first (once called on a tensor)."""
        if self._output_shape is None:
            raise AttributeError(f"Layer '{self.name}' has no defined output shape yet.")
        return self._output_shape

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """Returns the config of the layer: a dict ``from_config`` turns back into it."""
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32"}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Creates an operation from its config."""
        return cls(**config)

    @classmethod
    def _config_class_name(cls) -> str:
        return cls.__name__

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
