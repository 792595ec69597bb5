"""The execution plan: a model's layer chain turned, once, into the steps a pass runs.

A step runs forward and backward over one layer or over a fused group of neighbours; steps
call ``ops`` and the layers' own passes, and keep the tape of what they ran themselves. Layers
never see their neighbours: every fusion is decided here.

Fusions (all off with ``fuse=False``, where each layer runs alone):

* ``ConvMaxPoolStep``: a linear or ReLU convolution of an image (1-4 channels) under
  non-overlapping unpadded max pooling runs forward in one pass (each band of conv rows pooled in
  cache; inference keeps no conv output). Backward, when nothing before it needs an input
  gradient (the first layer), the weight gradient comes straight from the pooling's gradient;
  otherwise the pooling routes its gradient through the ReLU mask in the same pass.
* ``ActivationMaxPoolStep``: a ReLU-activated layer followed by max pooling; the pooling's
  backward applies the ReLU mask (one pass over the large activation instead of two).
* ``LossStep``: a softmax or sigmoid output with its matching crossentropy is differentiated
  from the logits.

To add a fusion: a step class with ``forward``/``backward`` (and ``layers``), and a rule in
``_fuse_at`` that says when it takes the layers at a position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import ops
from ..layers.base import Layer, op_arg, require_tape
from ..layers.convolutional import Conv2D
from ..layers.pooling import MaxPooling2D

__all__ = ["ExecutionPlan", "LossStep", "LayerStep", "ConvMaxPoolStep", "ActivationMaxPoolStep"]

LayerDone = Callable[[Layer], None]


class LayerStep:
    """One layer, run by its own forward and backward (it keeps its own tape)."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.layers = (layer,)

    def forward(self, x: np.ndarray, training: bool, keep_tape: bool) -> np.ndarray:
        return self.layer.forward(x, training=training)

    def backward(self, dy: np.ndarray, need_dx: bool, from_preactivation: bool = False):
        if from_preactivation:
            return self.layer.backward_preactivation(dy, need_dx=need_dx)
        return self.layer.backward(dy, need_dx=need_dx)

    @property
    def output_activation(self) -> str | None:
        return self.layer.output_activation

    @property
    def preactivation(self) -> np.ndarray | None:
        return self.layer.preactivation


class _PoolingStep:
    """Base of the steps that end with a max pooling (never an output activation)."""

    output_activation = None
    preactivation = None
    layers: tuple[Layer, ...] = ()


class ConvMaxPoolStep(_PoolingStep):
    """An image's convolution (1-4 channels, linear or ReLU) and its max pooling in one pass."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self._x = self._conv_y = None

    @staticmethod
    def takes(conv: Layer, pool: Layer) -> bool:
        return (
            isinstance(conv, Conv2D)
            and isinstance(pool, MaxPooling2D)
            and conv.activation in ("linear", "relu")
            and conv.kernel.shape[2] <= 4
            and tuple(pool.strides) == tuple(pool.pool_size)
            and pool.padding == "valid"
        )

    def forward(self, x, training, keep_tape):
        conv = self.conv
        conv_y, pooled = ops.conv2d_max_pool(
            x,
            conv.kernel,
            conv.bias,
            activation="relu" if conv.activation == "relu" else None,
            pool_size=op_arg(self.pool.pool_size),
            keep_conv_output=bool(keep_tape),
            **conv.op_kwargs(),
        )
        self._x, self._conv_y = x, conv_y  # conv_y is None without keep_tape
        return pooled

    def backward(self, dy, need_dx, from_preactivation=False):
        conv, pool = self.conv, self.pool
        require_tape(self._conv_y, conv)
        relu = conv.activation == "relu"
        if relu and not need_dx:
            # The first layer: its weight gradient straight from the pooling's, so the largest
            # gradient of the step (the conv output's) is never made.
            dk, db = ops.conv2d_relu_max_pool_weight_grad(
                self._x,
                conv.kernel,
                self._conv_y,
                dy,
                pool_size=op_arg(pool.pool_size),
                **conv.op_kwargs(),
            )
            conv.set_gradients(dk, db)
            return None
        route = ops.max_pool2d_relu_grad if relu else ops.max_pool2d_grad
        dz = route(self._conv_y, dy, **pool.op_kwargs())
        return conv.preactivation_grad(self._x, dz, need_dx)


class ActivationMaxPoolStep(_PoolingStep):
    """A ReLU-activated layer, then max pooling whose backward applies the ReLU mask."""

    def __init__(self, producer: Layer, pool: MaxPooling2D) -> None:
        self.producer, self.pool = producer, pool
        self.layers = (producer, pool)
        self._pool_x = None

    @staticmethod
    def takes(producer: Layer, pool: Layer) -> bool:
        return (
            isinstance(pool, MaxPooling2D)
            and getattr(producer, "activation", None) == "relu"
            and type(producer).backward_preactivation is not Layer.backward_preactivation
        )

    def forward(self, x, training, keep_tape):
        y = self.producer.forward(x, training=training)
        self._pool_x = y
        return ops.max_pool2d(y, **self.pool.op_kwargs())

    def backward(self, dy, need_dx, from_preactivation=False):
        require_tape(self._pool_x, self.pool)
        dz = ops.max_pool2d_relu_grad(self._pool_x, dy, **self.pool.op_kwargs())
        return self.producer.backward_preactivation(dz, need_dx=need_dx)


_FUSIONS = (ConvMaxPoolStep, ActivationMaxPoolStep)


def _fuse_at(chain: Sequence[Layer], i: int):
    """The fused step that takes ``chain[i]`` and ``chain[i + 1]``, or None."""
    if i + 1 >= len(chain):
        return None
    for step_class in _FUSIONS:
        if step_class.takes(chain[i], chain[i + 1]):
            return step_class(chain[i], chain[i + 1])
    return None


class ExecutionPlan:
    """The steps of one model's chain of layers (``InputLayer`` excluded), fused or not."""

    def __init__(self, chain: Sequence[Layer], fuse: bool = True) -> None:
        self.fuse = bool(fuse)
        self.steps: list[Any] = []
        i = 0
        while i < len(chain):
            step = _fuse_at(chain, i) if self.fuse else None
            step = step or LayerStep(chain[i])
            self.steps.append(step)
            i += len(step.layers)

    def describe(self) -> list[str]:
        """One line per step: its kind and the layers it runs (for tests and the profile)."""
        return [
            f"{type(step).__name__}({', '.join(layer.name for layer in step.layers)})"
            for step in self.steps
        ]

    def forward(self, x: np.ndarray, training: bool = False, keep_tape: bool = True):
        """Run every step; without ``keep_tape`` (predict, evaluate) steps may drop activations
        that only a backward pass reads."""
        for step in self.steps:
            x = step.forward(x, training, keep_tape)
        return x

    def backward(
        self,
        dy: np.ndarray,
        need_dx: bool,
        from_preactivation: bool = False,
        on_layer_done: LayerDone | None = None,
    ) -> np.ndarray | None:
        """The steps backward in reverse; each computes an input gradient only when something
        before it needs one (``need_dx`` for the model's input, or trainable weights upstream).
        ``on_layer_done(layer)`` is called as soon as a layer's gradients are final."""
        needs = self._input_gradient_needed(need_dx)
        for i in range(len(self.steps) - 1, -1, -1):
            step = self.steps[i]
            if not needs[i] and not any(layer.has_trainable_weights for layer in step.layers):
                return None
            dy = step.backward(dy, needs[i], from_preactivation)
            from_preactivation = False
            if on_layer_done is not None:
                for layer in reversed(step.layers):
                    on_layer_done(layer)  # data-parallel: start sending its gradients
            if not needs[i]:
                return None
        return dy

    def _input_gradient_needed(self, need_dx: bool) -> list[bool]:
        """needs[i]: step i must compute the gradient of its input."""
        needs, seen = [], bool(need_dx)
        for step in self.steps:
            needs.append(seen)
            seen = seen or any(layer.has_trainable_weights for layer in step.layers)
        return needs

    @property
    def output_activation(self) -> str | None:
        return self.steps[-1].output_activation if self.steps else None

    @property
    def preactivation(self) -> np.ndarray | None:
        return self.steps[-1].preactivation


class LossStep:
    """The loss and the gradient that starts a backward pass: from the logits when the output
    activation is the one the loss fuses with (softmax or sigmoid crossentropy), else from the
    predictions."""

    def __init__(self, loss: Any, plan: ExecutionPlan) -> None:
        self.loss = loss
        self.plan = plan
        self.from_logits = (
            plan.fuse
            and loss.fused_activation is not None
            and not getattr(loss, "from_logits", False)
            and plan.output_activation == loss.fused_activation
        )

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray):
        """(per-sample loss, gradient); the gradient is with respect to the output layer's
        pre-activation when ``from_logits``."""
        if self.from_logits:
            return self.loss.compute_from_logits(y_true, self.plan.preactivation)
        return self.loss.compute(y_true, y_pred)
