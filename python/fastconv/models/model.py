"""The functional ``Model``: its graph of layers, weights, configuration and summary.

A model is a chain of single-input layers from one ``Input`` to one output (each layer is
called once). Running it is the execution plan's job (``plan.py``, compiled once per graph and
``fuse`` setting); training, evaluation and prediction come from ``Trainer`` (``trainer.py``).
"""

from __future__ import annotations

import collections
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import distribution
from .._tensor import KerasTensor
from ..layers.base import Layer, format_shape, register_model, serialize_layer, unique_name
from ..layers.input_layer import InputLayer
from . import onnx_export, saving
from .plan import ExecutionPlan
from .summary import render_table
from .trainer import Trainer

__all__ = ["Model", "Functional"]


@register_model
class Model(Trainer, Layer):
    """Functional model: ``Model(inputs=Input(...), outputs=tensor)``."""

    def __init__(
        self,
        inputs: KerasTensor | Sequence[KerasTensor] | None = None,
        outputs: KerasTensor | Sequence[KerasTensor] | None = None,
        name: str | None = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        if type(self) is Model or type(self) is Functional:
            if inputs is None or outputs is None:
                raise ValueError(
                    "fastconv supports functional models only: call "
                    "`Model(inputs=..., outputs=...)` (subclassed models are not supported)."
                )
        super().__init__(
            name=name or unique_name(self._default_name()), trainable=trainable, **kwargs
        )
        self._init_state()
        if inputs is not None or outputs is not None:
            self._init_graph(inputs, outputs)

    @classmethod
    def _default_name(cls):
        return "functional"

    def _init_state(self):
        self._graph_layers = []  # InputLayer first, then the chain, in execution order
        self.inputs = self.outputs = None
        self._fuse = True
        self._plan = None
        self._init_trainer()

    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError("fastconv models support exactly one input tensor")
            inputs = inputs[0]
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        if not outputs:
            raise ValueError("`outputs` must hold at least one tensor")
        for what, t in [("inputs", inputs)] + [("outputs", t) for t in outputs]:
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    f"`{what}` must be a symbolic tensor from `Input(...)` or a layer call; "
                    f"received {type(t).__name__}"
                )
        if not isinstance(inputs._keras_history[0], InputLayer):
            raise ValueError("`inputs` must be the tensor returned by `Input(...)`")
        paths = [_path(inputs, t) for t in outputs]
        chain = max(paths, key=len)
        for t, path in zip(outputs, paths):
            if (not path and len(outputs) > 1) or path != chain[: len(path)]:
                raise ValueError(
                    f"fastconv models run one chain of layers: every output must be the output "
                    f"of a layer on the chain from the input to the last output; {t!r} is not."
                )
        self._output_positions = tuple(len(path) - 1 for path in paths)
        layers = [inputs._keras_history[0]] + chain
        counts = collections.Counter(layer.name for layer in layers)
        dup = sorted(name for name, n in counts.items() if n > 1)
        if dup:
            raise ValueError(
                f"The name {dup[0]!r} is used {counts[dup[0]]} times in the model. "
                "All layer names should be unique."
            )
        self._graph_layers = layers
        self._plan = None
        self.inputs, self.outputs = [inputs], outputs
        self.built = True
        self._build_input_shape = inputs.shape

    @property
    def layers(self) -> list[Layer]:
        """The model's layers, the InputLayer first, in execution order."""
        return list(self._graph_layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Retrieves a layer based on either its name (unique) or index.

        If ``name`` and ``index`` are both provided, ``index`` will take precedence.

        Args:
            name: String, name of layer.
            index: Integer, index of layer (0 is the InputLayer).

        Returns:
            A layer instance.
        """
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No such layer: {name}. Existing layers are: {[x.name for x in self.layers]}."
        )

    @property
    def input(self):
        """Retrieves the input tensor of the model (its one ``Input``)."""
        self._require_built()
        return self.inputs[0]

    @property
    def output(self):
        """The output tensor; the list of them for a model with several outputs (as Keras)."""
        self._require_built()
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    @property
    def input_shape(self):
        """The input's shape, batch axis first (``None``)."""
        return self.input.shape

    @property
    def output_shape(self):
        """The output's shape, batch axis first; a list of shapes for several outputs."""
        if len(self.outputs) > 1:
            return [t.shape for t in self.outputs]
        return self.output.shape

    def _require_built(self):
        if not self._graph_layers:
            raise ValueError(
                f"Model '{self.name}' has not yet been built. Build it first by calling "
                "`build(input_shape)`, by adding an `Input` or by calling it on data."
            )

    def _chain(self):
        return self._graph_layers[1:]

    # ------------------------------------------------------------------ Layer protocol
    def check_input_shape(self, shape):
        if not self._graph_layers:
            return
        expected = self.inputs[0].shape
        shape = tuple(shape)
        ok = len(shape) == len(expected) and all(
            e is None or s is None or e == s for e, s in zip(expected[1:], shape[1:])
        )
        if not ok:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"shape={format_shape(expected)}, found shape={format_shape(shape)}."
            )

    def _check_data_shape(self, data_shape):
        """Check a data array's shape (batch first) against the model input."""
        try:
            self.check_input_shape((None,) + tuple(data_shape[1:]))
        except ValueError as e:
            if tuple(data_shape) == tuple(self.inputs[0].shape[1:]):
                raise ValueError(
                    f"{e} It looks like a single sample without its batch axis: use x[None] "
                    "(or np.expand_dims(x, 0))."
                ) from None
            raise

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Functional models are built from their inputs and outputs: nothing to do here."""
        if not self._graph_layers:
            raise ValueError("Functional models are built from their inputs and outputs")

    def _maybe_build(self, input_shape):
        if not self._graph_layers:
            self.build(tuple(input_shape))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """The output shape for ``input_shape`` (batch axis first)."""
        self._require_built()
        if len(self.outputs) > 1:
            raise ValueError(f"Model '{self.name}' has several outputs: it cannot be a layer")
        return (input_shape[0],) + tuple(self.outputs[0].shape[1:])

    # ------------------------------------------------------------------ execution
    @property
    def fuse(self) -> bool:
        """Whether the execution plan fuses neighbouring layers (default True). False runs
        every layer alone: the reference for tests and benchmarks of the fusions."""
        return self._fuse

    @fuse.setter
    def fuse(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"`fuse` must be a bool; received {value!r}")
        self._fuse = bool(value)
        self._plan = None

    def _execution_plan(self) -> ExecutionPlan:
        """The plan of this model's chain, compiled on first use and kept until the graph or
        ``fuse`` changes."""
        if self._plan is None:
            positions = getattr(self, "_output_positions", None)
            self._plan = ExecutionPlan(self._chain(), fuse=self._fuse, outputs=positions)
        return self._plan

    def forward(self, x, training=False):
        """Runs the layers on ``x`` through the execution plan, keeping the tapes backward reads."""
        return self._execution_plan().forward(x, training=training, keep_tape=True)

    def backward(self, dy, need_dx=True):
        """Backpropagates ``dy``; returns the input gradient when ``need_dx``."""
        return self._execution_plan().backward(dy, need_dx)

    def backward_preactivation(self, dz, need_dx=True):
        """Backpropagates from the gradient of the last layer's pre-activation."""
        return self._execution_plan().backward(dz, need_dx, from_preactivation=True)

    def release_tape(self) -> None:
        """Drops the tapes of the last forward pass."""
        self._execution_plan().release()

    @property
    def output_activation(self):
        """The activation of the model's last layer (the plan fuses it with the loss)."""
        return self._execution_plan().output_activation if self._chain() else None

    @property
    def preactivation(self):
        """The last forward pass's output before the final activation, where kept."""
        return self._execution_plan().preactivation

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        """List of all weight variables of the model (NumPy arrays), in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        """List of all trainable weight variables of the model."""
        if not self.trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """List of all non-trainable weight variables of the model."""
        if not self.trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def _trainable_weights_and_grads(self):
        if not self.trainable:
            return []
        return [p for layer in self.layers for p in layer._trainable_weights_and_grads()]

    def get_weights(self) -> list[np.ndarray]:
        """Retrieves the weights of the model.

        Returns:
            A flat list of NumPy arrays (copies) in Keras' layouts: conv kernel
            ``(kh, kw, in, filters)``, dense kernel ``(in, units)``, then each bias.
        """
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Sets the weights of the model.

        Args:
            weights: A list of NumPy arrays with shapes and types matching the output of
                ``model.get_weights()``. Every shape is checked before any weight changes.
        """
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(
                f"You called `set_weights(weights)` on model '{self.name}' with a weight list of "
                f"length {len(weights)}, but the model was expecting {expected} weights."
            )
        # check every shape first so a failure leaves the model unchanged
        pos = 0
        for layer in self.layers:
            for p in layer.weights:
                w = np.asarray(weights[pos])
                if w.shape != p.shape:
                    raise ValueError(
                        f"Weight {pos} (layer '{layer.name}') has shape {p.shape}, but the "
                        f"provided weight has shape {w.shape}."
                    )
                pos += 1
        pos = 0
        for layer in self.layers:
            k = len(layer.weights)
            layer.set_weights(weights[pos : pos + k])
            pos += k

    def count_params(self) -> int:
        """Count the total number of scalars composing the weights.

        Returns:
            An integer count.
        """
        self._require_built()
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------------ summary
    def summary(
        self,
        line_length: int | None = None,
        positions: Sequence[float] | None = None,
        print_fn: Callable[[str], Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Sequence[str] | None = None,
    ) -> None:
        """Prints a string summary of the network.

        Args:
            line_length: Total length of printed lines (e.g. set this to adapt the display to
                different terminal window sizes).
            positions: Accepted for compatibility and ignored.
            print_fn: Print function to use. By default, prints to ``stdout``. It will be called on
                the summary's text.
            expand_nested: Accepted for compatibility and ignored.
            show_trainable: Accepted for compatibility and ignored.
            layer_range: Accepted for compatibility and ignored.
        """
        rows = []
        for layer in self.layers:
            kind = "Functional" if type(layer) is Model else type(layer).__name__
            try:
                shape = format_shape(layer.output_shape) if layer._output_shape else "?"
            except AttributeError:
                shape = "?"
            if isinstance(layer, Model):
                shape = format_shape(layer.output_shape) if layer._graph_layers else "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            rows.append((f"{layer.name} ({kind})", shape, params))
        built = bool(self._graph_layers)
        total = sum(w.size for w in self.weights) if built else 0
        trainable = sum(w.size for w in self.trainable_weights) if built else 0
        text = render_table(self.name, rows, total, trainable, line_length)
        if print_fn is None:
            enc = getattr(sys.stdout, "encoding", None) or "utf-8"
            try:
                text.encode(enc)
            except (UnicodeEncodeError, LookupError):
                text = render_table(self.name, rows, total, trainable, line_length, ascii=True)
            print(text)
        else:
            print_fn(text)

    def _out_shape(self, n):
        return (n,) + tuple(self.outputs[0].shape[1:])

    def _out_shapes(self, n):
        """The shape of each output for ``n`` samples."""
        return [(n,) + tuple(t.shape[1:]) for t in self.outputs]

    def _ensure_built(self, x_shape):
        if not self._graph_layers:
            if len(x_shape) < 2:
                raise ValueError(f"Input data must have a batch axis; received shape {x_shape}")
            self.build((None,) + tuple(x_shape[1:]))

    # ------------------------------------------------------------------ saving / config
    def save(
        self, filepath: str | os.PathLike, overwrite: bool = True, zipped: bool | None = None
    ) -> None:
        """Saves a model as a ``.keras`` file.

        The file holds the model's configuration (architecture), its compile settings and its
        weights, in Keras 3's format. In a data-parallel job only rank 0 writes.

        Args:
            filepath: ``str`` or ``os.PathLike`` object. The path where to save the model. Must end
                in ``.keras``.
            overwrite: Whether we should overwrite any existing model at the target location.
            zipped: Accepted for compatibility; the file is always a zip archive.

        Example:

            model.save("model.keras")
            loaded_model = fastconv.models.load_model("model.keras")
        """
        if distribution.is_chief():  # data-parallel: only rank 0 writes
            saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
        """Saves all layer weights to a ``.weights.h5`` file.

        Args:
            filepath: ``str`` or ``pathlib.Path`` object. Path where to save the model. Must end in
                ``.weights.h5``.
            overwrite: Whether we should overwrite any existing model at the target location.
        """
        if distribution.is_chief():  # data-parallel: only rank 0 writes
            saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike, max_bytes: int | None = None) -> None:
        """Load weights from a file saved via ``save_weights()``.

        Weights are loaded based on the network's topology. This means the architecture should be
        the same as when the weights were saved; every shape is checked.

        Args:
            filepath: ``str`` or ``pathlib.Path`` object. Path to load the weights from.
            max_bytes: the most weight bytes the file may make fastconv allocate (default
                ``fastconv.models.saving.MAX_WEIGHTS_BYTES``, 2 GiB); a file declaring more is
                refused before anything is read.
        """
        saving.load_weights(self, filepath, max_bytes=max_bytes)

    def export(
        self,
        filepath: str | os.PathLike,
        format: str = "onnx",
        verbose: bool | None = None,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> None:
        """Export the model as an artifact for inference.

        Args:
            filepath: ``str`` or ``os.PathLike`` object. The path to save the artifact.
            format: ``str``. The export format; fastconv supports ``"onnx"`` (needs the
                ``onnx`` package: ``pip install "fastconv[onnx]"``).
            verbose: Whether to print a message when the file is written.
            input_signature: Accepted for compatibility; the input is the model's
                ``Input`` (float32, NHWC, any batch size).
            **kwargs: Not supported.

        The ONNX graph computes what ``predict`` does (opset 17): training-only layers
        (Dropout, the random augmentation layers) are dropped, nested models inlined, and
        Keras' 'same' padding and average pooling written out exactly. In a data-parallel
        job only rank 0 writes.

        Example:

            model.export("model.onnx", format="onnx")
            session = onnxruntime.InferenceSession("model.onnx")
            predictions = session.run(None, {"input": images})[0]
        """
        if format != "onnx":
            raise ValueError(f"fastconv exports to format='onnx' only. Received: format={format!r}")
        if kwargs:
            raise TypeError(f"Unexpected arguments to export(): {sorted(kwargs)}")
        if distribution.is_chief():
            onnx_export.export_onnx(self, filepath)
            if verbose:
                print(f"Saved the ONNX model to {os.fspath(filepath)}")

    def get_config(self) -> dict[str, Any]:
        """Returns the model's config: its name, trainable flag and serialized layers."""
        if len(self.outputs or ()) > 1:
            raise ValueError(
                f"Model '{self.name}' has several outputs: fastconv saves models with one output"
            )
        layers = [serialize_layer(layer) for layer in self.layers]
        for i, entry in enumerate(layers):
            entry["inbound"] = None if i == 0 else i - 1
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Creates a model from its config (the output of ``get_config``)."""
        return saving.model_from_config({"class_name": cls._config_class_name(), "config": config})

    @classmethod
    def _config_class_name(cls):
        return "Functional"

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={bool(self._graph_layers)}>"


def _path(inputs: KerasTensor, tensor: KerasTensor) -> list[Layer]:
    """The layers from ``inputs`` to ``tensor``, in execution order."""
    chain = []
    t = tensor
    while t._keras_history[1] is not None:
        chain.append(t._keras_history[0])
        t = t._keras_history[1]
    if t is not inputs:
        raise ValueError(
            f"Graph disconnected: the output tensor {tensor!r} cannot be computed from the "
            f"given input {inputs!r} (it comes from input layer '{t._keras_history[0].name}')."
        )
    return chain[::-1]


Functional = Model
