"""Metrics: running, sample-weighted means over an epoch (as Keras)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import Registry, to_snake_case

__all__ = [
    "Metric",
    "Mean",
    "Accuracy",
    "SparseCategoricalAccuracy",
    "CategoricalAccuracy",
    "BinaryAccuracy",
    "get",
    "serialize",
]


class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state``."""

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        self.name = name or to_snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self) -> None:
        """Reset all of the metric state variables. This function is called between epochs when a
        metric is evaluated during training."""
        pass

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate statistics for the metric."""
        raise NotImplementedError

    def result(self) -> float:
        """Compute the current metric value. Returns: A scalar (float)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Return the serializable config of the metric."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        """Instantiates a metric from its config (output of ``get_config()``)."""
        return cls(**config)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


class Mean(Metric):
    """Weighted running mean of values."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        v = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += float(v.size)
        else:
            w = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class _MeanOfValues(Mean):
    """Mean over samples of a per-sample value computed by ``values(y_true, y_pred)``."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.values(np.asarray(y_true), np.asarray(y_pred)), sample_weight)


class SparseCategoricalAccuracy(_MeanOfValues):
    """Calculates how often predictions match integer labels.

    Args:
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result (float32 only).
    """

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name=name)

    @staticmethod
    def values(y_true, y_pred):
        """Per-sample 1.0/0.0: whether the integer label is the arg-max of the prediction."""
        pred = np.argmax(y_pred, axis=-1)
        t = y_true.reshape(pred.shape) if y_true.size == pred.size else y_true
        return (pred == t).astype(np.float32)


class CategoricalAccuracy(_MeanOfValues):
    """Calculates how often predictions match one-hot labels.

    Args:
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result (float32 only).
    """

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name=name)

    @staticmethod
    def values(y_true, y_pred):
        """Per-sample 1.0/0.0: whether the one-hot label's class is the prediction's arg-max."""
        return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float32)


class BinaryAccuracy(_MeanOfValues):
    """Calculates how often predictions match binary labels.

    Args:
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result (float32 only).
        threshold: (Optional) Float representing the threshold for deciding whether
            prediction values are 1 or 0.
    """

    def __init__(
        self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5
    ) -> None:
        self.threshold = float(threshold)
        super().__init__(name=name)

    def values(self, y_true, y_pred):
        """Per-sample 1.0/0.0: whether ``y_pred > threshold`` matches the label."""
        t = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        hit = ((y_pred > self.threshold) == (t > 0.5)).astype(np.float32)
        return hit.reshape(hit.shape[0], -1).mean(axis=1) if hit.ndim > 1 else hit

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": self.threshold}


class Accuracy(_MeanOfValues):
    """Exact-equality accuracy (``keras.metrics.Accuracy``)."""

    @staticmethod
    def values(y_true, y_pred):
        """Per-sample 1.0/0.0: whether the prediction equals the label."""
        t = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        return (t == y_pred).astype(np.float32)


class _AutoAccuracy(Mean):
    """``"accuracy"``: resolved from the shapes at first use, with Keras 3's rule."""

    def __init__(self, name="accuracy"):
        self._impl = None
        super().__init__(name=name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if self._impl is None:
            if y_pred.shape[-1] == 1:
                self._impl = BinaryAccuracy()
            elif y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
                self._impl = SparseCategoricalAccuracy()
            else:
                self._impl = CategoricalAccuracy()
        super().update_state(self._impl.values(y_true, y_pred), sample_weight)


_REGISTRY = Registry(
    "metric",
    Metric,
    (Mean, Accuracy, SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy, _AutoAccuracy),
    aliases={
        "sparse_categorical_accuracy": SparseCategoricalAccuracy,
        "categorical_accuracy": CategoricalAccuracy,
        "binary_accuracy": BinaryAccuracy,
    },
)


def get(identifier) -> Metric:
    """Resolve "accuracy"/"acc", a metric name, a config dict or a Metric instance."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return _AutoAccuracy(name=identifier)
    return _REGISTRY.get(identifier)


serialize = _REGISTRY.serialize
