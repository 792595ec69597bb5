"""Training callbacks: Callback base, History, ModelCheckpoint, EarlyStopping, LambdaCallback,
TerminateOnNaN, LearningRateScheduler."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ModelCheckpoint",
    "EarlyStopping",
    "LambdaCallback",
    "TerminateOnNaN",
    "LearningRateScheduler",
]


class Callback:
    """Base class; override any hook. ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self) -> None:
        self.model = None
        self.params = {}

    def set_model(self, model: Any) -> None:
        """Sets the model the callback observes (``fit``/``evaluate``/``predict`` call this)."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Sets the training parameters (``verbose``, ``epochs``, ``steps``)."""
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called at the beginning of training.

        Args:
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called at the end of training.

        Args:
            logs: Dict. Currently the output of the last call to ``on_epoch_end()`` is passed to
                this argument for this method but that may change in the future.
        """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of an epoch.

        Args:
            epoch: Integer, index of epoch.
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of an epoch.

        Args:
            epoch: Integer, index of epoch.
            logs: Dict, metric results for this training epoch, and for the validation epoch if
                validation is performed. Validation result keys are prefixed with ``val_``.
        """

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the beginning of a training batch in ``fit`` methods.

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a training batch in ``fit`` methods.

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict. Aggregated metric results up until this batch.
        """

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called at the beginning of evaluation or validation.

        Args:
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called at the end of evaluation or validation.

        Args:
            logs: Dict. Currently the output of the last call to ``on_test_batch_end()`` is passed
                to this argument for this method but that may change in the future.
        """

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the beginning of a batch in ``evaluate`` methods (and of validation).

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a batch in ``evaluate`` methods (and of validation).

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict. Aggregated metric results up until this batch.
        """

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called at the beginning of prediction.

        Args:
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called at the end of prediction.

        Args:
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the beginning of a batch in ``predict`` methods.

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict. Currently no data is passed to this argument for this method but that may
                change in the future.
        """

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a batch in ``predict`` methods.

        Args:
            batch: Integer, index of batch within the current epoch.
            logs: Dict, holding the batch's ``outputs``.
        """


class CallbackList:
    """Dispatches every hook to a list of callbacks."""

    def __init__(
        self,
        callbacks: Sequence[Callback] | None = None,
        model: Any = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Callbacks must be fastconv.callbacks.Callback instances: {cb!r}")
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)

    def __getattr__(self, name):
        if name.startswith("on_"):

            def hook(*args, **kwargs):
                for cb in self.callbacks:
                    getattr(cb, name)(*args, **kwargs)

            return hook
        raise AttributeError(name)


class History(Callback):
    """Records per-epoch logs in ``history`` (returned by ``fit``)."""

    def __init__(self) -> None:
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


def _monitor_op(mode, monitor, cls_name):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{cls_name} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
        mode = "auto"
    if mode == "auto":
        m = monitor.lower()
        mode = "max" if ("acc" in m or m.startswith("fmeasure") or "auc" in m) else "min"
    return (np.greater, -np.inf) if mode == "max" else (np.less, np.inf)


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch (or only when ``monitor`` improves).

    ``filepath`` may contain format fields filled from the epoch (1-based) and the logs, e.g.
    ``"model_{epoch:02d}-{val_loss:.2f}.keras"``.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch":
            raise ValueError("fastconv ModelCheckpoint supports only save_freq='epoch'")
        self.save_freq = save_freq
        if save_weights_only:
            if not self.filepath.endswith(".weights.npz"):
                raise ValueError(
                    "When using `save_weights_only=True` in `ModelCheckpoint`, the filepath "
                    f"provided must end in `.weights.npz`. Received: filepath={self.filepath}"
                )
        elif not self.filepath.endswith(".keras"):
            raise ValueError(
                "The filepath provided must end in `.keras` (Keras model format). Received: "
                f"filepath={self.filepath}"
            )
        self.monitor_op, self.best = _monitor_op(mode, monitor, "ModelCheckpoint")
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {e!r}'
            ) from e

    def _save(self, path):
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self._path(epoch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            self._save(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Can save best model only with {self.monitor} available, skipping. "
                f"Available logs: {sorted(logs)}",
                stacklevel=2,
            )
            return
        if self.monitor_op(current, self.best):
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras 3 semantics)."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.monitor_op, self._init_best = _monitor_op(mode, monitor, "EarlyStopping")
        if self.monitor_op is np.less:
            self.min_delta *= -1
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._init_best
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._init_best
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self.min_delta, reference))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(sorted(logs or {}))}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        # As Keras 3: the best weights come back at the end of training, stopped early or not.
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                epoch = self.best_epoch + 1
                print(f"Restoring model weights from the end of the best epoch: {epoch}.")
            self.model.set_weights(self.best_weights)


class LambdaCallback(Callback):
    """Callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"Unknown callback hook: {name}")
            setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stop training when a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Learning rate scheduler.

    At the beginning of every epoch, this callback gets the updated learning rate value from
    the ``schedule`` function provided, with the current epoch and current learning rate, and
    applies the updated learning rate on the optimizer.

    Args:
        schedule: A function that takes an epoch index (integer, indexed from 0) and current
            learning rate (float) as inputs and returns a new learning rate as output (float).
        verbose: Integer. 0: quiet, 1: log update messages.
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        if not isinstance(learning_rate, (float, int, np.floating, np.integer)):
            raise ValueError(
                f"The output of the `schedule` function should be a float. Got: {learning_rate!r}"
            )
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            print(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                f"{float(learning_rate)}."
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
