"""Functional ``Model``, ``Sequential`` and the training loop (fit / evaluate / predict).

A model is a chain of single-input layers from one ``Input`` to one output (each layer is called
once). A training step runs every layer's ``forward`` in order (each keeps its tape), the loss and
its gradient (fused with a final softmax/sigmoid when the loss is the matching crossentropy), every
``backward`` in reverse order (the first layers skip dx when nothing upstream needs it) and one
optimizer update over all trainable weights.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _random, distribution
from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .._tensor import KerasTensor
from ..layers.base import Layer, format_shape, unique_name
from ..layers.core import InputLayer

__all__ = ["Model", "Sequential", "Functional"]


# --------------------------------------------------------------------------- data handling
def _is_array_like(x):
    return isinstance(x, (np.ndarray, list)) or (
        hasattr(x, "__array__") and not hasattr(x, "__next__")
    )


def _as_array(x, what):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"`{what}` must be a numeric array (int, uint, float or bool); received dtype "
            f"{a.dtype}."
        )
    return a


class _ArrayData:
    """Batches of in-memory arrays (targets already validated and converted)."""

    def __init__(self, x, y, batch_size, shuffle=False, shard=False):
        self.x, self.y = x, y
        self.n = len(x)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shard = shard  # data-parallel: yield this process's part of each global batch
        self.steps = max(1, math.ceil(self.n / batch_size))

    def __iter__(self):
        perm = _random.get_rng().permutation(self.n) if self.shuffle else None
        if self.shard:
            perm = distribution.broadcast_order(perm)
        bs = self.batch_size
        for s in range(self.steps):
            lo, hi = s * bs, min(self.n, (s + 1) * bs)
            if self.shard:
                lo, hi = distribution.local_range(lo, hi)
            if perm is None:
                sel = slice(lo, hi)
                xb = self.x[sel]
                yb = None if self.y is None else self.y[sel]
            else:
                idx = np.sort(perm[lo:hi])  # sorted: cache-friendlier gathers
                xb = self.x.take(idx, axis=0)
                yb = None if self.y is None else self.y.take(idx, axis=0)
            yield np.ascontiguousarray(xb, dtype=np.float32), yb


class _IterData:
    """Batches from a dataset object (``__iter__``, maybe ``__len__``) or a Python generator."""

    def __init__(self, obj, steps=None, shard=False):
        self.obj = obj
        self.shard = shard  # data-parallel: yield this process's part of each global batch
        self.is_iterator = hasattr(obj, "__next__")
        self._it = obj if self.is_iterator else None
        if steps is None and not self.is_iterator:
            try:
                steps = len(obj)
            except TypeError:
                steps = None
        self.steps = steps
        self.exhausted = False

    def __iter__(self):
        source = self._it if self.is_iterator else self.obj
        it = distribution.local_batches(source) if self.shard else iter(source)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(it)
            except StopIteration:
                if self.is_iterator:
                    self.exhausted = True
                return
            count += 1
            yield _unpack(batch)


def _unpack(batch):
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 3:
            if batch[2] is not None:
                raise ValueError("fastconv does not support sample weights in dataset batches")
            return batch[0], batch[1]
        raise ValueError(
            f"A dataset batch must be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; "
            f"received a sequence of length {len(batch)}."
        )
    if isinstance(batch, dict):
        raise ValueError("fastconv does not support dict batches; yield (x, y) tuples")
    return batch, None


def _resolve_verbose(verbose):
    if verbose == "auto":
        verbose = 1
    if verbose in (0, 1, 2) and not isinstance(verbose, float):
        return int(verbose) if distribution.is_chief() else 0  # data-parallel: rank 0 reports
    raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")


def _fmt_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class _Progress:
    """verbose=1: one tqdm bar per epoch updated in place; 2: one line per epoch; 0: silent."""

    def __init__(self, verbose, total, header=None):
        self.verbose = verbose
        self.total = total
        self.start = time.perf_counter()
        self.n = 0
        self.bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            if header:
                print(header, flush=True)
            fmt = (
                "{n_fmt}/{total_fmt} [{bar:20}] {elapsed}{postfix}"
                if total
                else "{n_fmt} steps [{elapsed}]{postfix}"
            )
            # A fixed-width bar and no column limit: the loss and metrics at the end of the line
            # are never cut off by a narrow terminal (the line wraps instead, as Keras' does).
            self.bar = tqdm(total=total, file=sys.stdout, bar_format=fmt, leave=True, ncols=None)
        elif verbose == 2 and header:
            self.header = header
        self.header = header

    def _postfix(self, logs):
        per = (time.perf_counter() - self.start) / max(self.n, 1)
        unit = f"{per * 1000:.0f}ms/step" if per < 1 else f"{per:.2f}s/step"
        text = _fmt_logs(logs)
        return f" {unit}" + (f" - {text}" if text else "")

    def update(self, logs):
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(logs), refresh=False)
            self.bar.update(1)

    def close(self, logs):
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(logs), refresh=False)
            self.bar.refresh()
            self.bar.close()
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            head = f"{self.header}\n" if self.header else ""
            print(f"{head}{self.n}/{self.total or self.n} - {elapsed:.0f}s -" + self._postfix(logs))


# --------------------------------------------------------------------------- the model
def _never(*_args) -> bool:
    return False


def _relu_folds_into(producer, layer) -> bool:
    """Whether ``layer``'s backward can also apply ``producer``'s ReLU mask."""
    # Every layer with an `activation` implements backward_preactivation.
    return (
        hasattr(layer, "backward_through_relu") and getattr(producer, "activation", None) == "relu"
    )


class Model(Layer):
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
        self.optimizer = None
        self.loss = None
        self._loss = None
        self._metrics = []
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._compile_config = None
        self.compiled = False
        self.stop_training = False
        self.history = None

    # ------------------------------------------------------------------ graph
    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError("fastconv models support exactly one input tensor")
            inputs = inputs[0]
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError("fastconv models support exactly one output tensor")
            outputs = outputs[0]
        for what, t in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    f"`{what}` must be a symbolic tensor from `Input(...)` or a layer call; "
                    f"received {type(t).__name__}"
                )
        if not isinstance(inputs._keras_history[0], InputLayer):
            raise ValueError("`inputs` must be the tensor returned by `Input(...)`")
        chain = []
        t = outputs
        while t._keras_history[1] is not None:
            chain.append(t._keras_history[0])
            t = t._keras_history[1]
        if t is not inputs:
            raise ValueError(
                f"Graph disconnected: the output tensor {outputs!r} cannot be computed from the "
                f"given input {inputs!r} (it comes from input layer '{t._keras_history[0].name}')."
            )
        layers = [inputs._keras_history[0]] + chain[::-1]
        counts = collections.Counter(layer.name for layer in layers)
        dup = sorted(name for name, n in counts.items() if n > 1)
        if dup:
            raise ValueError(
                f"The name {dup[0]!r} is used {counts[dup[0]]} times in the model. "
                "All layer names should be unique."
            )
        self._graph_layers = layers
        self.inputs, self.outputs = [inputs], [outputs]
        self.built = True
        self._build_input_shape = inputs.shape

    @property
    def layers(self) -> list[Layer]:
        return list(self._graph_layers)

    def get_layer(self, name=None, index=None):
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
        self._require_built()
        return self.inputs[0]

    @property
    def output(self):
        self._require_built()
        return self.outputs[0]

    @property
    def input_shape(self):
        return self.input.shape

    @property
    def output_shape(self):
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
        if not self._graph_layers:
            raise ValueError("Functional models are built from their inputs and outputs")

    def _maybe_build(self, input_shape):
        if not self._graph_layers:
            self.build(tuple(input_shape))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        self._require_built()
        return (input_shape[0],) + tuple(self.outputs[0].shape[1:])

    def forward(self, x, training=False):
        return self._forward(x, training, keep_activations=True)

    def _infer(self, x):
        """forward(x, training=False) for predict and evaluate, which never run a backward pass:
        activations that only the backward pass reads need not be kept."""
        return self._forward(x, False, keep_activations=False)

    def _forward(self, x, training, keep_activations):
        chain = self._chain()
        i = 0
        while i < len(chain):
            layer = chain[i]
            if i + 1 < len(chain) and getattr(layer, "takes_max_pool", _never)(chain[i + 1], x):
                # A few-channel convolution (an image's) and its pooling in one pass over the
                # activation between them.
                x = layer.forward_through_max_pool(
                    chain[i + 1], x, training=training, keep_output=keep_activations
                )
                i += 2
            else:
                x = layer.forward(x, training=training)
                i += 1
        return x

    def _backward(self, dy, need_dx, from_preactivation, on_layer_done=None):
        chain = self._chain()
        # trainable_before[i]: some layer before chain[i] has trainable weights
        trainable_before, seen = [], False
        for layer in chain:
            trainable_before.append(seen)
            seen = seen or layer.has_trainable_weights
        preactivation = from_preactivation  # dy is with respect to chain[i]'s pre-activation
        for i in range(len(chain) - 1, -1, -1):
            layer = chain[i]
            need = bool(need_dx or trainable_before[i])
            if not need and not layer.has_trainable_weights:
                return None
            if preactivation:
                dy = layer.backward_preactivation(dy, need_dx=need)
                preactivation = False
            elif (
                i > 0
                and not (need_dx or trainable_before[i - 1])
                and getattr(chain[i - 1], "takes_max_pool_grad", lambda _: False)(layer)
            ):
                # The first layer's weight gradient straight from the pooling's: the largest
                # gradient of the step is never made.
                chain[i - 1].weight_grads_through_max_pool(layer, dy)
                if on_layer_done is not None:
                    on_layer_done(layer)
                    on_layer_done(chain[i - 1])
                return None
            elif need and i > 0 and _relu_folds_into(chain[i - 1], layer):
                # A max pooling right after a ReLU-activated layer applies the ReLU mask itself
                # (one pass over the large activation instead of two).
                dy = layer.backward_through_relu(dy)
                preactivation = True
            else:
                dy = layer.backward(dy, need_dx=need)
            if on_layer_done is not None:
                on_layer_done(layer)  # data-parallel: start sending this layer's gradients
            if not need:
                return None
        return dy

    def backward(self, dy, need_dx=True):
        return self._backward(dy, need_dx, False)

    def backward_preactivation(self, dz, need_dx=True):
        return self._backward(dz, need_dx, True)

    @property
    def output_activation(self):
        chain = self._chain()
        return chain[-1].output_activation if chain else None

    @property
    def preactivation(self):
        return self._chain()[-1].preactivation

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def _trainable_weights_and_grads(self):
        if not self.trainable:
            return []
        return [p for layer in self.layers for p in layer._trainable_weights_and_grads()]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
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
        text = _render_table(self.name, rows, total, trainable, line_length)
        if print_fn is None:
            enc = getattr(sys.stdout, "encoding", None) or "utf-8"
            try:
                text.encode(enc)
            except (UnicodeEncodeError, LookupError):
                text = _render_table(self.name, rows, total, trainable, line_length, ascii=True)
            print(text)
        else:
            print_fn(text)

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: str | dict[str, Any] | optimizers_module.Optimizer = "rmsprop",
        loss: str | dict[str, Any] | losses_module.Loss | Callable[..., Any] | None = None,
        metrics: Any = None,
        loss_weights: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: bool | str = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("fastconv does not support `loss_weights` or `weighted_metrics`")
        if steps_per_execution != 1:
            raise ValueError("fastconv supports only steps_per_execution=1")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._loss = losses_module.get(loss) if loss is not None else None
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ValueError("fastconv models have one output: pass `metrics` as a list")
        self._metrics = [metrics_module.get(m) for m in metrics]
        names = ["loss"] + [m.name for m in self._metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Metric names must be unique, got {names}")
        self._compile_config = {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": None if self._loss is None else losses_module.serialize(self._loss),
            # Names stay names (Keras resolves "accuracy" from the loss); objects and dicts are
            # stored from the resolved metric, so a loaded model compiles the same way again.
            "metrics": [
                m if isinstance(m, str) else metrics_module.serialize(resolved)
                for m, resolved in zip(metrics, self._metrics)
            ],
        }
        self.compiled = True

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + [m.name for m in self._metrics]

    @property
    def metrics(self) -> list[metrics_module.Metric]:
        return [self._loss_tracker] + list(self._metrics)

    def _assert_compiled(self):
        if not self.compiled or self._loss is None:
            raise ValueError(
                "You must call `compile()` with a `loss` before training or evaluating the model."
            )

    def _fused(self):
        loss = self._loss
        return (
            loss.fused_activation is not None
            and not getattr(loss, "from_logits", False)
            and self.output_activation == loss.fused_activation
        )

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for m in self._metrics:
            m.reset_state()

    def _logs(self, prefix=""):
        names = ["loss"] + [m.name for m in self._metrics]
        # data-parallel: totals and counts summed over all processes
        values = distribution.global_results([self._loss_tracker] + self._metrics)
        return {prefix + k: float(v) for k, v in zip(names, values)}

    # ------------------------------------------------------------------ steps
    def _out_shape(self, n):
        return (n,) + tuple(self.outputs[0].shape[1:])

    def _prepare_batch(self, x, y):
        """Validate/convert one batch coming from a dataset (arrays are checked up front)."""
        x = _as_array(x, "x")
        self._ensure_built(x.shape)
        self._check_data_shape(x.shape)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if y is not None:
            y = _as_array(y, "y")
            if len(y) != len(x):
                raise ValueError(
                    f"Batch size mismatch: x has {len(x)} samples but y has {len(y)} samples."
                )
            y = self._loss.prepare_targets(y, self._out_shape(len(x)))
        return x, y

    def _compute_gradients(self, x, y, on_layer_done=None):
        """Forward + loss + backward. Returns (batch loss, predictions); grads stay in layers."""
        y_pred = self.forward(x, training=True)
        fused = self._fused()
        if fused:
            per, dz = self._loss.compute_from_logits(y, self.preactivation)
        else:
            per, dz = self._loss.compute(y, y_pred)
        self._backward(dz, need_dx=False, from_preactivation=fused, on_layer_done=on_layer_done)
        return float(np.mean(per, dtype=np.float64)), y_pred

    def _train_step(self, x, y):
        sync = distribution.gradient_sync(self, len(x))  # None unless data-parallel
        if len(x):  # a data-parallel shard of a small last batch may be empty
            loss, y_pred = self._compute_gradients(x, y, sync and sync.layer_done)
        pairs = self._trainable_weights_and_grads()
        grads = [g for _, g in pairs] if sync is None else sync.averaged_gradients()
        self.optimizer.apply(grads, [w for w, _ in pairs])
        if len(x):
            self._update_metrics(loss, y, y_pred)

    def _test_step(self, x, y):
        if not len(x):  # an empty data-parallel shard
            return
        y_pred = self._infer(x)
        if self._fused():
            per, _ = self._loss.compute_from_logits(y, self.preactivation)
        else:
            per, _ = self._loss.compute(y, y_pred)
        self._update_metrics(float(np.mean(per, dtype=np.float64)), y, y_pred)

    def _update_metrics(self, loss, y, y_pred):
        self._loss_tracker.update_state(loss, sample_weight=len(y_pred))
        for m in self._metrics:
            m.update_state(y, y_pred)

    # ------------------------------------------------------------------ data
    def _ensure_built(self, x_shape):
        if not self._graph_layers:
            if len(x_shape) < 2:
                raise ValueError(f"Input data must have a batch axis; received shape {x_shape}")
            self.build((None,) + tuple(x_shape[1:]))

    def _check_arrays(self, x, y, need_y=True):
        x = _as_array(x, "x")
        if x.ndim == 0:
            raise ValueError("`x` must have a batch axis; received a scalar")
        self._ensure_built(x.shape)
        self._check_data_shape(x.shape)
        if len(x) == 0:
            raise ValueError("Expected input data to be non-empty (x has 0 samples).")
        if y is None:
            if need_y:
                raise ValueError("Targets `y` are required (or pass a dataset yielding (x, y)).")
            return x, None
        y = _as_array(y, "y")
        if y.ndim == 0 or len(y) != len(x):
            ny = y.shape[0] if y.ndim else "a scalar"
            raise ValueError(
                "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
                f"samples. 'x' sizes: {len(x)} 'y' sizes: {ny}"
            )
        y = self._loss.prepare_targets(y, self._out_shape(len(x)))
        return x, y

    def _make_data(self, x, y, batch_size, shuffle, steps=None, need_y=True, what="fit"):
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0
        ):
            raise ValueError(f"`batch_size` must be a positive integer; received {batch_size!r}")
        if x is None:
            raise ValueError(f"`x` is required by {what}()")
        if _is_array_like(x):
            x, y = self._check_arrays(x, y, need_y=need_y)
            return _ArrayData(x, y, batch_size or 32, shuffle, shard=what != "predict")
        if not hasattr(x, "__iter__"):
            raise ValueError(f"Unrecognized data type for `x`: {type(x).__name__}")
        if y is not None:
            raise ValueError(
                "`y` must not be given when `x` is a dataset or generator: it must yield "
                "(x, y) batches."
            )
        if batch_size is not None and what != "predict":
            warnings.warn(
                "`batch_size` is ignored when `x` is a dataset or generator", stacklevel=3
            )
        return _IterData(x, steps, shard=what != "predict")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[callbacks_module.Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[int, float] | None = None,
        sample_weight: np.ndarray | None = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> callbacks_module.History:
        self._assert_compiled()
        verbose = _resolve_verbose(verbose)
        if class_weight is not None or sample_weight is not None:
            raise ValueError("fastconv does not support `class_weight` or `sample_weight`")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1); received {validation_split}")
        if validation_split and validation_data is None:
            if not _is_array_like(x):
                raise ValueError(
                    "`validation_split` is only supported for NumPy arrays; with a dataset pass "
                    "`validation_data` instead."
                )
            x, y = _as_array(x, "x"), None if y is None else _as_array(y, "y")
            n = len(x)
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(
                    f"Training data contains {n} samples, which is not sufficient to split it "
                    f"into a validation and training set as specified by "
                    f"`validation_split={validation_split}`. Either provide more data, or a "
                    "different value for the `validation_split` argument."
                )
            if y is not None and len(y) == n:
                validation_data = (x[split_at:], y[split_at:])
                x, y = x[:split_at], y[:split_at]
        data = self._make_data(x, y, batch_size, shuffle, steps_per_epoch)
        val = None
        if validation_data is not None:
            vx, vy = validation_data, None
            if isinstance(validation_data, list):  # Keras takes [x_val, y_val] as a tuple
                validation_data = tuple(validation_data)
            if isinstance(validation_data, tuple):
                if len(validation_data) not in (2, 3):
                    raise ValueError("`validation_data` must be (x_val, y_val) or a dataset")
                vx, vy = validation_data[0], validation_data[1]
            val = self._make_data(
                vx,
                vy,
                validation_batch_size or batch_size,
                False,
                validation_steps,
                what="evaluate",
            )
        self.history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(
            [self.history] + list(callbacks or []),
            model=self,
            params={"verbose": verbose, "epochs": epochs, "steps": data.steps},
        )
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cbs.on_epoch_begin(epoch)
            header = f"Epoch {epoch + 1}/{epochs}"
            bar = _Progress(verbose, data.steps, header)
            logs = {}
            steps_done = 0
            for step, (xb, yb) in enumerate(data):
                if isinstance(data, _IterData):
                    xb, yb = self._prepare_batch(xb, yb)
                    if yb is None:
                        raise ValueError("The training dataset must yield (x, y) batches")
                cbs.on_train_batch_begin(step)
                self._train_step(xb, yb)
                steps_done += 1
                logs = self._logs()
                cbs.on_train_batch_end(step, logs)
                bar.update(logs)
                if self.stop_training:
                    break
            if steps_done == 0:
                bar.close(logs)
                warnings.warn(
                    "Your input ran out of data; interrupting training. Make sure that your "
                    "dataset or generator can generate at least `steps_per_epoch * epochs` "
                    "batches.",
                    stacklevel=2,
                )
                break
            epoch_logs = self._logs()
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._run_eval(val, cbs, verbose=0)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            bar.close(epoch_logs)
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs={k: v[-1] for k, v in self.history.history.items()})
        distribution.barrier()  # data-parallel: what rank 0 wrote is there for every process
        return self.history

    # ------------------------------------------------------------------ evaluate / predict
    def _run_eval(self, data, cbs, verbose):
        self._reset_metrics()
        cbs.on_test_begin()
        bar = _Progress(verbose, data.steps)
        logs = {}
        for step, (xb, yb) in enumerate(data):
            if isinstance(data, _IterData):
                xb, yb = self._prepare_batch(xb, yb)
                if yb is None:
                    raise ValueError("The evaluation dataset must yield (x, y) batches")
            cbs.on_test_batch_begin(step)
            self._test_step(xb, yb)
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
            bar.update(logs)
        if bar.n == 0:
            raise ValueError("The evaluation data yielded no batches")
        logs = self._logs()
        bar.close(logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sample_weight: np.ndarray | None = None,
        steps: int | None = None,
        callbacks: Sequence[callbacks_module.Callback] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        self._assert_compiled()
        verbose = _resolve_verbose(verbose)
        if sample_weight is not None:
            raise ValueError("fastconv does not support `sample_weight`")
        data = self._make_data(x, y, batch_size, False, steps, what="evaluate")
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, params={"verbose": verbose, "steps": data.steps}
        )
        logs = self._run_eval(data, cbs, verbose)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        steps: int | None = None,
        callbacks: Sequence[callbacks_module.Callback] | None = None,
    ) -> np.ndarray:
        verbose = _resolve_verbose(verbose)
        data = self._make_data(x, None, batch_size, False, steps, need_y=False, what="predict")
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, params={"verbose": verbose, "steps": data.steps}
        )
        cbs.on_predict_begin()
        bar = _Progress(verbose, data.steps)
        out, parts, pos = None, [], 0
        if isinstance(data, _ArrayData):
            out = np.empty(self._out_shape(data.n), dtype=np.float32)
        for step, (xb, _) in enumerate(data):
            if isinstance(data, _IterData):
                xb, _ = self._prepare_batch(xb, None)
            cbs.on_predict_batch_begin(step)
            yb = self._infer(xb)
            if out is not None:
                out[pos : pos + len(yb)] = yb
                pos += len(yb)
            else:
                parts.append(np.array(yb, dtype=np.float32, copy=True))
            cbs.on_predict_batch_end(step, {"outputs": yb})
            bar.update({})
        bar.close({})
        cbs.on_predict_end()
        if out is not None:
            return out
        if not parts:
            raise ValueError("The prediction data yielded no batches")
        return np.concatenate(parts, axis=0)

    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: np.ndarray | None = None,
        class_weight: dict[int, float] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """One training step on one batch; metrics are reset first (values are for this batch)."""
        self._assert_compiled()
        if sample_weight is not None or class_weight is not None:
            raise ValueError("fastconv does not support `sample_weight` or `class_weight`")
        x, y = self._check_arrays(x, y)
        self._reset_metrics()
        self._train_step(np.ascontiguousarray(x, dtype=np.float32), y)
        return self._batch_result(return_dict)

    def test_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: np.ndarray | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        self._assert_compiled()
        if sample_weight is not None:
            raise ValueError("fastconv does not support `sample_weight`")
        x, y = self._check_arrays(x, y)
        self._reset_metrics()
        self._test_step(np.ascontiguousarray(x, dtype=np.float32), y)
        return self._batch_result(return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        x, _ = self._check_arrays(x, None, need_y=False)
        return self._infer(np.ascontiguousarray(x, dtype=np.float32))

    def _batch_result(self, return_dict):
        logs = self._logs()
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ saving / config
    def save(
        self, filepath: str | os.PathLike, overwrite: bool = True, zipped: bool | None = None
    ) -> None:
        from .saving import save_model

        if distribution.is_chief():  # data-parallel: only rank 0 writes
            save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
        from .saving import save_weights

        if distribution.is_chief():  # data-parallel: only rank 0 writes
            save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        from .saving import load_weights

        load_weights(self, filepath)

    def get_config(self) -> dict[str, Any]:
        from .saving import serialize_layer

        layers = [serialize_layer(layer) for layer in self.layers]
        for i, entry in enumerate(layers):
            entry["inbound"] = None if i == 0 else i - 1
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        from .saving import model_from_config

        return model_from_config({"class_name": cls._config_class_name(), "config": config})

    @classmethod
    def _config_class_name(cls):
        return "Functional"

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={bool(self._graph_layers)}>"


Functional = Model


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
        return list(self._seq)

    def add(self, layer: Layer | KerasTensor, rebuild: bool = True) -> None:
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
        if not self._seq:
            raise TypeError("There are no layers in the model.")
        layer = self._seq.pop()
        layer._inbound = layer._outbound = None
        if self._input_layer is not None:
            out = self._seq[-1].output if self._seq else self._input_layer.output
            self._init_graph(self._input_layer.output, out)
        return layer

    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        if self._graph_layers:
            return
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        input_shape = tuple(input_shape)
        self._input_layer = InputLayer(batch_shape=input_shape)
        self._connect_from(0)

    def get_config(self) -> dict[str, Any]:
        from .saving import serialize_layer

        layers = ([self._input_layer] if self._input_layer is not None else []) + self._seq
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize_layer(layer) for layer in layers],
        }


def _render_table(name, rows, total, trainable, line_length=None, ascii=False):
    heads = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(31, *(len(r[0]) for r in rows)) if rows else 31]
    widths.append(max(22, *(len(r[1]) for r in rows)) if rows else 22)
    widths.append(max(13, *(len(r[2]) for r in rows)) if rows else 13)

    def cells(r, sep):
        return (
            sep
            + f" {r[0]:<{widths[0]}} "
            + sep
            + f" {r[1]:<{widths[1]}} "
            + sep
            + f" {r[2]:>{widths[2]}} "
            + sep
        )

    def rule(left, mid, right, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def size(n):
        b = n * 4.0
        for unit in ("B", "KB", "MB", "GB"):
            if b < 1024 or unit == "GB":
                return f"{b:.2f} {unit}"
            b /= 1024

    lines = [f'Model: "{name}"']
    if ascii:
        lines += [rule("+", "+", "+", "-"), cells(heads, "|"), rule("+", "+", "+", "=")]
        for r in rows:
            lines.append(cells(r, "|"))
            lines.append(rule("+", "+", "+", "-"))
    else:
        lines += [rule("┏", "┳", "┓", "━"), cells(heads, "┃"), rule("┡", "╇", "┩", "━")]
        for i, r in enumerate(rows):
            lines.append(cells(r, "│"))
            last = i == len(rows) - 1
            lines.append(rule("└", "┴", "┘", "─") if last else rule("├", "┼", "┤", "─"))
        if not rows:
            lines.append(rule("└", "┴", "┘", "─"))
    lines += [
        f" Total params: {total:,} ({size(total)})",
        f" Trainable params: {trainable:,} ({size(trainable)})",
        f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})",
    ]
    return "\n".join(lines)
