"""The execution plan: a model's layer chain turned, once, into the steps a pass runs.

A step runs forward and backward over one layer or over a fused group of neighbours; steps
call ``ops`` and the layers' own passes, and keep the tape of what they ran themselves. Layers
never see their neighbours: every fusion is decided here.

Fusions of layers (off with ``fuse=False``, where each layer runs alone):

* ``ConvMaxPoolStep``: a linear or ReLU convolution under non-overlapping unpadded max pooling
  runs forward in one call: on an image (1-4 channels) each band of conv rows is pooled in cache;
  in inference, where the convolution runs Winograd under a 2x2 pooling, each output tile is
  pooled in the output transform; inference keeps no conv output. Backward, when the layer reads
  an image and nothing before it needs an input gradient (the first layer), the weight gradient
  comes straight from the pooling's gradient; otherwise the pooling routes its gradient through
  the ReLU mask in the same pass.
* ``ActivationMaxPoolStep``: a ReLU-activated layer followed by max pooling; the pooling's
  backward applies the ReLU mask (one pass over the large activation instead of two).
And always: ``LossStep`` differentiates a softmax or sigmoid output with its matching
crossentropy from the logits (the gradient survives where the probabilities saturate).

To add a fusion: a step class with ``forward``/``backward`` (and ``layers``), and a rule in
``_fuse_at`` that says when it takes the layers at a position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .. import _core, ops
from ..layers.base import Layer, op_arg, require_tape
from ..layers.convolutional import Conv2D
from ..layers.pooling import MaxPooling2D
from ..ops.conv import bind_conv2d

__all__ = ["ExecutionPlan", "LossStep", "LayerStep", "ConvMaxPoolStep", "ActivationMaxPoolStep"]

LayerDone = Callable[[Layer], None]


class StepObserver(Protocol):
    """Told when each step's pass begins and ends (``models/profile.py`` times them)."""

    def begin(self, step: Any, pass_name: str, need_dx: bool = True) -> None: ...

    def end(self, step: Any, pass_name: str) -> None: ...


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

    def release(self) -> None:
        self.layer.release_tape()

    def inference_call(self, input_shape):
        return self.layer.inference_call(input_shape)

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
    _TAPE_ATTRIBUTES: tuple[str, ...] = ()

    def release(self) -> None:
        for name in self._TAPE_ATTRIBUTES:
            setattr(self, name, None)
        for layer in self.layers:
            layer.release_tape()

    def inference_call(self, input_shape):
        return None


class ConvMaxPoolStep(_PoolingStep):
    """A convolution (linear or ReLU) and its non-overlapping max pooling in one call. Its tape
    is the input and the pooling's argmax (one byte per pooled value), never the conv output."""

    _TAPE_ATTRIBUTES = ("_x", "_argmax")

    def __init__(self, conv: Conv2D, pool: MaxPooling2D) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self._x = self._argmax = None

    @staticmethod
    def takes(conv: Layer, pool: Layer) -> bool:
        return (
            isinstance(conv, Conv2D)
            and isinstance(pool, MaxPooling2D)
            and conv.activation in ("linear", "relu")
            and tuple(pool.strides) == tuple(pool.pool_size)
            and pool.padding == "valid"
            and int(np.prod(pool.pool_size)) <= 254  # an argmax byte names the window's cell
        )

    def forward(self, x, training, keep_tape):
        conv = self.conv
        argmax, pooled = ops.conv2d_max_pool(
            x,
            conv.kernel,
            conv.bias,
            activation="relu" if conv.activation == "relu" else None,
            pool_size=op_arg(self.pool.pool_size),
            keep_conv_output=False,
            return_argmax=bool(keep_tape),
            **conv.op_kwargs(),
        )
        self._x, self._argmax = x, argmax  # argmax is None without keep_tape
        return pooled

    def inference_call(self, input_shape):
        conv, pool = self.conv, self.pool
        bound_config = (conv.inference_config(), tuple(pool.pool_size))
        conv_max_pool, _ = bind_conv2d(
            input_shape, conv.kernel.shape, pool_size=op_arg(pool.pool_size), **bound_config[0]
        )

        def call(x):
            if (conv.inference_config(), tuple(pool.pool_size)) != bound_config:
                y = self.forward(x, False, False)  # changed since bound: the plain path
                self.release()
                return y
            return conv_max_pool(x, conv.kernel, conv.bias)

        return call

    def backward(self, dy, need_dx, from_preactivation=False):
        conv, pool = self.conv, self.pool
        require_tape(self._argmax, conv)
        pool_size = op_arg(pool.pool_size)
        if not need_dx and conv.kernel.shape[2] <= _core.few_channel_max:
            # The first layer on an image: its weight gradient straight from the pooling's, so
            # the largest gradient of the step (the conv output's) is never made.
            dk, db = ops.conv2d_max_pool_weight_grad_from_argmax(
                self._x, conv.kernel, self._argmax, dy, pool_size=pool_size, **conv.op_kwargs()
            )
            conv.set_gradients(dk, db)
            return None
        conv_hw = ops.conv2d_output_shape(self._x.shape, conv.kernel.shape[:2], **conv.op_kwargs())
        conv_shape = (self._x.shape[0], *conv_hw, conv.kernel.shape[3])
        dz = ops.max_pool2d_grad_from_argmax(self._argmax, dy, conv_shape, pool_size)
        return conv.preactivation_grad(self._x, dz, need_dx)


class ActivationMaxPoolStep(_PoolingStep):
    """A ReLU-activated layer, then max pooling whose backward applies the ReLU mask."""

    _TAPE_ATTRIBUTES = ("_pool_x",)

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


def _unbound(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A step without a bound inference call, run as in any inference pass."""

    def run(x: np.ndarray) -> np.ndarray:
        y = step.forward(x, False, False)
        step.release()
        return y

    run.unbound = True  # type: ignore[attr-defined]
    return run


class ExecutionPlan:
    """The steps of one model's chain of layers (``InputLayer`` excluded), fused or not."""

    def __init__(
        self, chain: Sequence[Layer], fuse: bool = True, outputs: Sequence[int] | None = None
    ) -> None:
        """``outputs``: the positions in ``chain`` of the layers whose outputs ``forward``
        returns (default: the last). A fused step never hides one of them: a pair whose first
        layer's output is wanted runs as two steps."""
        self.fuse = bool(fuse)
        self.has_tape = False  # whether the steps hold what a backward pass reads
        self.observer: StepObserver | None = None  # the profile's timer, when one runs
        self._runners: dict[tuple[int, ...], list[Callable[[np.ndarray], np.ndarray]]] = {}
        # (shape, threads per team) that predict's teams have run as a pair alone (batch_teams)
        self.team_ready: set[tuple[tuple[int, ...], int]] = set()
        self.outputs = tuple(outputs) if outputs is not None else (len(chain) - 1,)
        self.steps: list[Any] = []
        self._step_of: dict[int, int] = {}  # chain position of a step's last layer -> step
        i = 0
        while i < len(chain):
            step = _fuse_at(chain, i) if self.fuse else None
            if step is not None and set(self.outputs) & set(range(i, i + len(step.layers) - 1)):
                step = None
            step = step or LayerStep(chain[i])
            self.steps.append(step)
            i += len(step.layers)
            self._step_of[i - 1] = len(self.steps) - 1

    def describe(self) -> list[str]:
        """One line per step: its kind and the layers it runs (for tests and the profile)."""
        return [
            f"{type(step).__name__}({', '.join(layer.name for layer in step.layers)})"
            for step in self.steps
        ]

    def forward(self, x: np.ndarray, training: bool = False, keep_tape: bool = True):
        """Run every step; without ``keep_tape`` (predict, evaluate) no step keeps what only a
        backward pass reads, so each activation is freed once the next step has read it.
        With several ``outputs``: the list of them (the arrays the steps passed on)."""
        if not (training or keep_tape) and self.observer is None and len(self.outputs) == 1:
            return self._infer(x)
        passed = []
        self.has_tape = False
        observer = self.observer
        for step in self.steps:
            if observer is not None:
                observer.begin(step, "forward")
            x = step.forward(x, training, keep_tape)
            if observer is not None:
                observer.end(step, "forward")
            if not keep_tape and step is not self.steps[-1]:  # the loss reads the last's logits
                step.release()
            if len(self.outputs) > 1:
                passed.append(x)
        self.has_tape = keep_tape
        return [passed[self._step_of[k]] for k in self.outputs] if passed else x

    _RUNNERS_KEPT = 4  # input shapes whose bound calls are kept (a fit's batch, its last, ...)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """Inference through the steps but the last, bound to x's shape on the first batch of
        that shape (``Layer.inference_call``): each later batch runs their kernels back to back,
        with none of the argument checks between them. Python between kernels costs more than
        its own time: the OpenMP workers fall asleep and each kernel waits to wake them (A's
        predict: 3.9-4.6 ms per batch of 64 through the steps, 2.6-3.5 ms through bound calls).
        The last step runs as in any pass: evaluate's loss reads its pre-activation."""
        self.drop_tapes()
        if not self.steps:
            return x
        x = self._run_bound(x, len(self.steps) - 1)
        return self.steps[-1].forward(x, False, False)

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """predict's pass: every step through its bound call (see ``_infer``). Where every step
        has one (``all_bound``), no step keeps state, so that threads may run batches at once
        once the shape is bound; call ``drop_tapes`` first."""
        if len(self.outputs) > 1 or self.observer is not None:
            return self.forward(x, training=False, keep_tape=False)
        return self._run_bound(x, len(self.steps))

    def all_bound(self, input_shape: tuple[int, ...]) -> bool:
        """Whether every step has a bound call for inputs of this shape (bound already)."""
        calls = self._runners.get(tuple(input_shape))
        return calls is not None and not any(getattr(c, "unbound", False) for c in calls)

    def drop_tapes(self) -> None:
        """Drop a training forward's tapes (inference would hold them for nothing)."""
        if self.has_tape:
            self.release()

    def _run_bound(self, x: np.ndarray, count: int) -> np.ndarray:
        """x through the first ``count`` steps' bound calls (the plain path where a step has
        none); on the first batch of x's shape every step is bound, by running this one."""
        calls = self._runners.get(x.shape)
        if calls is not None:
            for call in calls[:count]:
                x = call(x)
            return x
        if len(self._runners) >= self._RUNNERS_KEPT:
            self._runners.clear()
        calls, shape = [], x.shape
        for i, step in enumerate(self.steps):
            call = step.inference_call(x.shape) if x.shape[0] else None
            calls.append(call if call is not None else _unbound(step))
            if i < count:  # count is the steps or all but the last: each is bound to its input
                x = calls[-1](x)
        self._runners[shape] = calls
        return x

    def release(self) -> None:
        """Drop every step's tape."""
        self.has_tape = False
        for step in self.steps:
            step.release()

    def backward(
        self,
        dy: np.ndarray,
        need_dx: bool,
        from_preactivation: bool = False,
        on_layer_done: LayerDone | None = None,
        release_tape: bool = False,
        down_to: int | None = None,
    ) -> np.ndarray | None:
        """The steps backward in reverse; each computes an input gradient only when something
        before it needs one (``need_dx`` for the model's input, or trainable weights upstream).
        ``on_layer_done(layer)`` is called as soon as a layer's gradients are final. With
        ``release_tape`` (a training step) each step's tape is dropped once it has run.
        ``down_to``: stop at the output of the chain's layer at that position (one of
        ``outputs``, so that a step ends there) and return its gradient (with ``need_dx``); the
        steps before it do not run."""
        if not self.has_tape and self.steps:
            raise RuntimeError(
                "backward needs the activations of forward(x) (predict and evaluate do not keep "
                "them, and a training step drops them after its backward pass); run forward first"
            )
        first = 0 if down_to is None else self._step_after(down_to)
        trainable = [any(layer.has_trainable_weights for layer in st.layers) for st in self.steps]
        needs = self._input_gradient_needed(need_dx, trainable, first)
        try:
            for i in range(len(self.steps) - 1, first - 1, -1):
                step = self.steps[i]
                if not needs[i] and not trainable[i]:
                    return None
                if self.observer is not None:
                    self.observer.begin(step, "backward", needs[i])
                dy = step.backward(dy, needs[i], from_preactivation)
                if self.observer is not None:
                    self.observer.end(step, "backward")
                from_preactivation = False
                if release_tape:
                    step.release()
                if on_layer_done is not None:
                    for layer in reversed(step.layers):
                        on_layer_done(layer)  # data-parallel: start sending its gradients
                if not needs[i]:
                    return None
            return dy
        finally:
            if release_tape:
                self.release()

    def _step_after(self, position: int) -> int:
        """The step that starts right after the chain's layer at ``position``."""
        if position not in self._step_of:
            raise ValueError(
                f"the output of the chain's layer {position} is inside a fused step: compile "
                "the plan with that position in `outputs`"
            )
        return self._step_of[position] + 1

    def _input_gradient_needed(self, need_dx: bool, trainable: list[bool], first: int = 0):
        """needs[i]: step i must compute the gradient of its input (steps from ``first`` on);
        ``trainable[i]``: step i has trainable weights."""
        needs, seen = [False] * first, bool(need_dx)
        for has_weights in trainable[first:]:
            needs.append(seen)
            seen = seen or has_weights
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
            loss.fused_activation is not None
            and not getattr(loss, "from_logits", False)
            and plan.output_activation == loss.fused_activation
        )

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray):
        """(per-sample loss, gradient); the gradient is with respect to the output layer's
        pre-activation when ``from_logits``."""
        if self.from_logits:
            return self.loss.compute_from_logits(y_true, self.plan.preactivation)
        return self.loss.compute(y_true, y_pred)
