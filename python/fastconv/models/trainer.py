"""Training, evaluation and prediction: ``compile``, the steps, ``fit``, ``evaluate``,
``predict`` and the ``*_on_batch`` calls, as Keras 3's ``Trainer``.

A training step: the execution plan's steps forward (each keeps its tape), the loss and its
gradient (``LossStep``), the steps backward in reverse, one optimizer update over all trainable
weights. ``Model`` mixes this in; it supplies the plan (``_execution_plan``), the shape checks
and the graph.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import callbacks as callbacks_module
from .. import distribution
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..ops._buffers import BufferPool
from ..runtime import get_num_threads
from .batch_teams import predict_in_teams
from .data_adapters import ArrayData, IterData, as_array, is_array_like
from .plan import LossStep
from .profile import Profile, profile_model
from .progress import Progress, resolve_verbose

__all__ = ["Trainer"]


def _check_batch_size(batch_size):
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise ValueError(f"`batch_size` must be a positive integer; received {batch_size!r}")


def _split_validation(x, y, validation_split):
    """Keras' ``validation_split``: the last fraction of the arrays, before any shuffling."""
    if not is_array_like(x):
        raise ValueError(
            "`validation_split` is only supported for NumPy arrays; with a dataset pass "
            "`validation_data` instead."
        )
    x, y = as_array(x, "x"), None if y is None else as_array(y, "y")
    n = len(x)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it "
            f"into a validation and training set as specified by "
            f"`validation_split={validation_split}`. Either provide more data, or a "
            "different value for the `validation_split` argument."
        )
    if y is None or len(y) != n:
        return x, y, None
    return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])


def _validation_arrays(validation_data):
    """(x_val, y_val) from a tuple or list, or (dataset, None)."""
    if isinstance(validation_data, list):  # Keras takes [x_val, y_val] as a tuple
        validation_data = tuple(validation_data)
    if not isinstance(validation_data, tuple):
        return validation_data, None
    if len(validation_data) not in (2, 3):
        raise ValueError("`validation_data` must be (x_val, y_val) or a dataset")
    return validation_data[0], validation_data[1]


def _with_buffer_pool(release_after: bool):
    """Run the method's steps with the model's buffer pool (the memory plan: each step's large
    outputs reuse the last step's buffers). ``release_after``: return the pool's free buffers
    to the system when the call ends (fit, evaluate, predict; not the one-batch calls a loop
    repeats)."""

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            try:
                with self._buffers.active():
                    return method(self, *args, **kwargs)
            finally:
                if release_after:
                    self._buffers.release_free()

        return run

    return decorate


class Trainer:
    """compile / fit / evaluate / predict for ``Model`` (see the module docstring)."""

    def _init_trainer(self) -> None:
        self._buffers = BufferPool()
        self.optimizer = None
        self.loss = None
        self._loss = None
        self._metrics = []
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._compile_config = None
        self.compiled = False
        self.stop_training = False
        self.history = None

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
        """Configures the model for training.

        Args:
            optimizer: String (name of optimizer) or optimizer instance. See
                ``fastconv.optimizers``.
            loss: Loss function. May be a string (name of loss function), or a
                ``fastconv.losses.Loss`` instance. See ``fastconv.losses``.
            metrics: List of metrics to be evaluated by the model during training and
                testing. Typically you will use ``metrics=['accuracy']``.
            loss_weights, weighted_metrics: Not supported (one output); must be None.
            run_eagerly, jit_compile, auto_scale_loss: Accepted for compatibility; ignored.
            steps_per_execution: Only 1 is supported.
        """
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
        """The labels of ``evaluate``'s results: ``"loss"``, then each metric's name."""
        return ["loss"] + [m.name for m in self._metrics]

    @property
    def metrics(self) -> list[metrics_module.Metric]:
        """The model's metrics: the loss tracker, then the compiled metrics."""
        return [self._loss_tracker] + list(self._metrics)

    def _assert_compiled(self):
        if not self.compiled or self._loss is None:
            raise ValueError(
                "You must call `compile()` with a `loss` before training or evaluating the model."
            )
        if self.outputs and len(self.outputs) > 1:
            raise ValueError(
                f"fastconv trains and evaluates models with one output; '{self.name}' has "
                f"{len(self.outputs)} (predict returns one array per output)"
            )

    def _loss_step(self) -> LossStep:
        plan = self._execution_plan()
        step = getattr(self, "_cached_loss_step", None)
        if step is None or step.plan is not plan or step.loss is not self._loss:
            step = self._cached_loss_step = LossStep(self._loss, plan)
        return step

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for m in self._metrics:
            m.reset_state()

    def _logs(self, prefix=""):
        # data-parallel: totals and counts summed over all processes
        values = distribution.global_results([self._loss_tracker] + self._metrics)
        return {prefix + k: float(v) for k, v in zip(self.metrics_names, values)}

    # ------------------------------------------------------------------ steps
    def _compute_gradients(self, x, y, on_layer_done=None):
        """Forward + loss + backward. Returns (batch loss, predictions); grads stay in layers."""
        plan, loss_step = self._execution_plan(), self._loss_step()
        y_pred = plan.forward(x, training=True, keep_tape=True)
        per, grad = loss_step(y, y_pred)
        plan.backward(grad, False, loss_step.from_logits, on_layer_done, release_tape=True)
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
        per, _ = self._loss_step()(y, y_pred)
        self._update_metrics(float(np.mean(per, dtype=np.float64)), y, y_pred)

    def _infer(self, x):
        """The forward pass of predict and evaluate: no tape for a backward pass is kept."""
        return self._execution_plan().forward(x, training=False, keep_tape=False)

    def _update_metrics(self, loss, y, y_pred):
        self._loss_tracker.update_state(loss, sample_weight=len(y_pred))
        for m in self._metrics:
            m.update_state(y, y_pred)

    # ------------------------------------------------------------------ data
    def _prepare_batch(self, x, y):
        """Validate/convert one batch coming from a dataset (arrays are checked up front)."""
        x = as_array(x, "x")
        self._ensure_built(x.shape)
        self._check_data_shape(x.shape)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if y is not None:
            y = as_array(y, "y")
            if len(y) != len(x):
                raise ValueError(
                    f"Batch size mismatch: x has {len(x)} samples but y has {len(y)} samples."
                )
            y = self._loss.prepare_targets(y, self._out_shape(len(x)))
        return x, y

    def _check_arrays(self, x, y, need_y=True):
        x = as_array(x, "x")
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
        y = as_array(y, "y")
        if y.ndim == 0 or len(y) != len(x):
            ny = y.shape[0] if y.ndim else "a scalar"
            raise ValueError(
                "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
                f"samples. 'x' sizes: {len(x)} 'y' sizes: {ny}"
            )
        y = self._loss.prepare_targets(y, self._out_shape(len(x)))
        return x, y

    def _make_data(self, x, y, batch_size, shuffle, steps=None, need_y=True, what="fit"):
        _check_batch_size(batch_size)
        if x is None:
            raise ValueError(f"`x` is required by {what}()")
        if is_array_like(x):
            x, y = self._check_arrays(x, y, need_y=need_y)
            return ArrayData(x, y, batch_size or 32, shuffle, shard=what != "predict")
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
        return IterData(x, steps, shard=what != "predict")

    def _batches(self, data, what, need_y=True):
        """(step, x, y) of each batch, dataset batches validated as they come."""
        for step, (xb, yb) in enumerate(data):
            if isinstance(data, IterData):
                xb, yb = self._prepare_batch(xb, yb)
                if need_y and yb is None:
                    raise ValueError(f"The {what} dataset must yield (x, y) batches")
            yield step, xb, yb

    # ------------------------------------------------------------------ fit
    @_with_buffer_pool(release_after=True)
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
        """Trains the model for a fixed number of epochs (dataset iterations).

        Args:
            x, y: Input data and target data: NumPy arrays, or ``x`` a dataset or generator
                yielding ``(inputs, targets)`` batches (then ``y`` should not be specified).
            batch_size: Number of samples per gradient update. Defaults to 32.
            epochs: Number of epochs to train the model (until the epoch of index ``epochs``).
            verbose: ``"auto"``, 0, 1, or 2. 0 = silent, 1 = progress bar (on a terminal; one
                line per epoch in a file or pipe), 2 = one line per epoch. "auto" becomes 1.
            callbacks: List of ``fastconv.callbacks.Callback`` instances to apply in training.
            validation_split: Fraction of the training data to be used as validation data
                (the last samples of ``x`` and ``y``, before shuffling).
            validation_data: ``(x_val, y_val)`` or a dataset on which to evaluate the loss and
                any model metrics at the end of each epoch.
            shuffle: Whether to shuffle the training data before each epoch (arrays only).
            initial_epoch, steps_per_epoch, validation_steps, validation_batch_size,
                validation_freq: As in Keras. class_weight, sample_weight: not supported.

        Returns:
            A ``History`` object: ``History.history`` is a record of training loss values and
            metrics values at successive epochs, and validation values (if applicable).
        """
        self._assert_compiled()
        verbose = resolve_verbose(verbose)
        if class_weight is not None or sample_weight is not None:
            raise ValueError("fastconv does not support `class_weight` or `sample_weight`")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1); received {validation_split}")
        if validation_split and validation_data is None:
            x, y, validation_data = _split_validation(x, y, validation_split)
        data = self._make_data(x, y, batch_size, shuffle, steps_per_epoch)
        val = None
        if validation_data is not None:
            vx, vy = _validation_arrays(validation_data)
            val_batch = validation_batch_size or batch_size
            val = self._make_data(vx, vy, val_batch, False, validation_steps, what="evaluate")
        self.history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(
            [self.history] + list(callbacks or []),
            model=self,
            params={"verbose": verbose, "epochs": epochs, "steps": data.steps},
        )
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            epoch_logs, bar = self._fit_epoch(data, cbs, verbose, epoch, epochs)
            if epoch_logs is None:  # the data ran out
                break
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

    def _fit_epoch(self, data, cbs, verbose, epoch, epochs):
        """One epoch's training steps: (its logs, or None when the data yielded no batch; the
        progress bar, closed by the caller after validation)."""
        self._reset_metrics()
        cbs.on_epoch_begin(epoch)
        bar = Progress(verbose, data.steps, f"Epoch {epoch + 1}/{epochs}")
        logs = {}
        for step, xb, yb in self._batches(data, "training"):
            cbs.on_train_batch_begin(step)
            self._train_step(xb, yb)
            logs = self._logs()
            cbs.on_train_batch_end(step, logs)
            bar.update(logs)
            if self.stop_training:
                break
        if bar.n == 0:
            bar.close(logs)
            warnings.warn(
                "Your input ran out of data; interrupting training. Make sure that your "
                "dataset or generator can generate at least `steps_per_epoch * epochs` "
                "batches.",
                stacklevel=3,
            )
            return None, bar
        return logs, bar  # the last batch's logs: the epoch's running means

    # ------------------------------------------------------------------ evaluate / predict
    def _run_eval(self, data, cbs, verbose):
        self._reset_metrics()
        cbs.on_test_begin()
        bar = Progress(verbose, data.steps)
        logs = {}
        for step, xb, yb in self._batches(data, "evaluation"):
            cbs.on_test_batch_begin(step)
            self._test_step(xb, yb)
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
            bar.update(logs)
        if bar.n == 0:
            raise ValueError("The evaluation data yielded no batches")
        bar.close(logs)
        cbs.on_test_end(logs)
        return logs

    @_with_buffer_pool(release_after=True)
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
        """Returns the loss value & metrics values for the model in test mode.

        Args:
            x, y: Input data and target data, as in ``fit``.
            batch_size: Number of samples per batch of computation. Defaults to 32.
            verbose: ``"auto"``, 0, 1, or 2, as in ``fit`` (2 = single line).
            steps: Total number of steps (batches) before declaring the evaluation round
                finished. ``None``: until the data is exhausted.
            callbacks: List of callbacks to apply during evaluation.
            return_dict: If ``True``, loss and metric results are returned as a dict.
            sample_weight: Not supported.

        Returns:
            Scalar test loss, or list of scalars (``model.metrics_names`` labels them).
        """
        self._assert_compiled()
        verbose = resolve_verbose(verbose)
        if sample_weight is not None:
            raise ValueError("fastconv does not support `sample_weight`")
        data = self._make_data(x, y, batch_size, False, steps, what="evaluate")
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, params={"verbose": verbose, "steps": data.steps}
        )
        return self._results(self._run_eval(data, cbs, verbose), return_dict)

    @_with_buffer_pool(release_after=True)
    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        steps: int | None = None,
        callbacks: Sequence[callbacks_module.Callback] | None = None,
    ) -> np.ndarray:
        """Generates output predictions for the input samples, in batches.

        Args:
            x: Input samples: a NumPy array, or a dataset or generator yielding batches.
            batch_size: Number of samples per batch. Defaults to 32.
            verbose: ``"auto"``, 0, 1, or 2, as in ``fit``.
            steps: Total number of steps (batches) before declaring the prediction round
                finished. ``None``: until the data is exhausted.
            callbacks: List of callbacks to apply during prediction.

        Returns:
            NumPy array(s) of predictions (a list for a model with several outputs).
        """
        verbose = resolve_verbose(verbose)
        data = self._make_data(x, None, batch_size, False, steps, need_y=False, what="predict")
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, params={"verbose": verbose, "steps": data.steps}
        )
        cbs.on_predict_begin()
        bar = Progress(verbose, data.steps)
        # Arrays: one buffer per output filled batch by batch; datasets: parts joined at the end.
        several = len(self.outputs) > 1  # predict returns a list, as Keras
        outs = None
        if isinstance(data, ArrayData):
            outs = [np.empty(shape, np.float32) for shape in self._out_shapes(data.n)]
        parts, pos = [], 0
        plan = self._execution_plan()
        plan.drop_tapes()
        # Arrays whose batches every step binds run two at a time on teams of threads; the
        # callbacks then see a pair's begins, then its ends. Datasets run one batch at a time:
        # a generator may wait for the last prediction.

        def store(step, xb, yb):
            nonlocal pos
            ys = yb if several else [yb]
            if outs is not None:
                for out, y in zip(outs, ys):
                    out[pos : pos + len(y)] = y
                pos += len(xb)
            else:
                parts.append([np.array(y, dtype=np.float32, copy=True) for y in ys])
            cbs.on_predict_batch_end(step, {"outputs": yb})
            bar.update({})

        batches = self._batches(data, "prediction", need_y=False)
        threads = get_num_threads() if outs is not None else 1
        predict_in_teams(plan, batches, threads, cbs.on_predict_batch_begin, store)
        bar.close({})
        cbs.on_predict_end()
        if outs is None:
            if not parts:
                raise ValueError("The prediction data yielded no batches")
            outs = [np.concatenate(part, axis=0) for part in zip(*parts)]
        return outs if several else outs[0]

    # ------------------------------------------------------------------ one batch
    @_with_buffer_pool(release_after=False)
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
        return self._results(self._logs(), return_dict)

    @_with_buffer_pool(release_after=False)
    def test_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: np.ndarray | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """The loss and metrics on one batch; metrics are reset first."""
        self._assert_compiled()
        if sample_weight is not None:
            raise ValueError("fastconv does not support `sample_weight`")
        x, y = self._check_arrays(x, y)
        self._reset_metrics()
        self._test_step(np.ascontiguousarray(x, dtype=np.float32), y)
        return self._results(self._logs(), return_dict)

    @_with_buffer_pool(release_after=False)
    def predict_on_batch(self, x: Any) -> np.ndarray:
        """The model's outputs for one batch."""
        x, _ = self._check_arrays(x, None, need_y=False)
        return self._infer(np.ascontiguousarray(x, dtype=np.float32))

    def profile(
        self,
        x: Any,
        y: Any = None,
        steps: int = 5,
        print_fn: Callable[[str], Any] | None = print,
    ) -> Profile:
        """Times ``steps`` training steps on the batch ``(x, y)`` (inference on ``x`` without
        ``y``) and reports, per layer and pass, the time, its share of the step, GFLOP/s, the
        share of this machine's measured FP32 peak and the convolution algorithm, and the time
        outside the kernels. Training leaves the weights and optimizer state as they were.
        Prints the table (``print_fn=None``: silent) and returns the ``Profile``."""
        result = profile_model(self, x, y, steps=steps)
        if print_fn is not None:
            print_fn(str(result))
        return result

    @staticmethod
    def _results(logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values
