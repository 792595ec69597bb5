"""Losses (Keras names, ``from_logits``, 'sum_over_batch_size' reduction).

Each loss computes per-sample values and the gradient of their batch mean in one vectorised pass:
``loss.compute(y_true, y_pred) -> (per_sample (n,), d mean / d y_pred)``. The crossentropies
also offer ``compute_from_logits`` which the model uses (fused and stable) when its last layer ends
with the matching activation (softmax for the categorical ones, sigmoid for the binary one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from ._registry import Registry, to_snake_case

__all__ = [
    "Loss",
    "SparseCategoricalCrossentropy",
    "CategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "get",
    "serialize",
]

EPSILON = 1e-7


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


class Loss:
    """Base class. ``fused_activation`` names the activation this loss can absorb."""

    fused_activation: str | None = None

    def __init__(
        self,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        if reduction not in ("sum_over_batch_size", "auto", None, "mean"):
            raise ValueError(
                f"fastconv losses support only reduction='sum_over_batch_size'. "
                f"Received: {reduction!r}"
            )
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = "sum_over_batch_size"

    def prepare_targets(self, y_true: Any, y_pred_shape: tuple[int, ...]) -> np.ndarray:
        """Validate and convert targets for predictions of shape ``y_pred_shape`` (batch first)."""
        return _f32(y_true)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample losses and the gradient with respect to ``y_pred``: ``(per_sample, grad)``."""
        raise NotImplementedError

    def compute_from_logits(
        self, y_true: np.ndarray, logits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """As ``compute``, from the logits before the fused activation (stable)."""
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        if sample_weight is not None:
            raise NotImplementedError("sample_weight is not supported by fastconv losses")
        y_pred = _f32(y_pred)
        per_sample, _ = self.compute(self.prepare_targets(y_true, y_pred.shape), y_pred)
        return float(np.mean(per_sample, dtype=np.float64))

    def get_config(self) -> dict[str, Any]:
        """Returns the config dictionary for a ``Loss`` instance."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        """Instantiates a ``Loss`` from its config (output of ``get_config()``)."""
        return cls(**config)


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _per_sample(row_values, n):
    return row_values.reshape(n, -1).mean(axis=1)


class _Crossentropy(Loss):
    """A crossentropy: fused with its activation from logits, or on probabilities.

    Subclasses give ``_fused(targets, logits)`` and ``_from_probabilities(targets, y_pred)``.
    """

    from_logits = False

    def compute_from_logits(
        self, y_true: np.ndarray, logits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._fused(y_true, logits)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.from_logits:
            return self._fused(y_true, y_pred)
        return self._from_probabilities(y_true, y_pred)


class _SmoothedCrossentropy(_Crossentropy):
    """Keras' ``from_logits``/``label_smoothing``/``axis=-1`` arguments of the dense-target
    crossentropies."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or to_snake_case(type(self).__name__), **kwargs)
        if axis != -1:
            raise ValueError(f"fastconv {type(self).__name__} supports only axis=-1")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = -1

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=-1)
        return cfg


def _same_shape_targets(y: np.ndarray, shape: tuple[int, ...], hint: str = "") -> np.ndarray:
    """Targets of the predictions' shape; (batch, ...) targets for a last axis of 1 are reshaped."""
    if y.shape == shape:
        return y
    if y.shape == shape[:-1] and shape[-1] == 1:
        return y.reshape(shape)
    raise ValueError(
        f"Arguments `target` and `output` must have the same shape. Received: "
        f"target.shape={y.shape}, output.shape={shape}.{hint}"
    )


class SparseCategoricalCrossentropy(_Crossentropy):
    """Crossentropy with integer labels in ``[0, num_classes)``."""

    fused_activation = "softmax"

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or "sparse_categorical_crossentropy", **kwargs)
        if ignore_class is not None:
            raise ValueError("fastconv does not support `ignore_class`")
        self.from_logits = bool(from_logits)

    def prepare_targets(self, y_true: Any, y_pred_shape: tuple[int, ...]) -> np.ndarray:
        y = np.asarray(y_true)
        n, k = y_pred_shape[0], y_pred_shape[-1]
        expected = tuple(y_pred_shape[:-1])
        if y.shape != expected and not (y.shape == expected + (1,)):
            raise ValueError(
                f"Sparse categorical labels must have shape {expected} (one integer class index "
                f"per sample) for predictions of shape {tuple(y_pred_shape)}; received labels of "
                f"shape {y.shape}."
            )
        if y.dtype.kind not in "iub":
            if y.dtype.kind != "f":
                raise ValueError(f"Labels must be integers, received dtype {y.dtype}")
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError(
                    "Sparse categorical labels must be integer class indices; received "
                    "non-integer or non-finite values."
                )
        y = y.reshape(-1).astype(np.int64)
        if y.size:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= k:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"Received a label value of {bad} which is outside the valid range of "
                    f"[0, {k}). Labels must be integers in [0, {k}) for a model with {k} outputs."
                )
        del n
        return y

    def _fused(self, labels, logits):
        z = _rows(_f32(logits))
        losses, d = ops.sparse_softmax_cross_entropy(z, labels)
        d *= np.float32(1.0 / len(z))
        return _per_sample(losses, logits.shape[0]), d.reshape(logits.shape)

    def _from_probabilities(self, y_true, y_pred):
        y = _rows(_f32(y_pred))
        one_hot = np.zeros_like(y)
        one_hot[np.arange(len(y)), y_true] = 1.0
        return _crossentropy_of_probabilities(y_pred, y, one_hot)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["from_logits"] = self.from_logits
        return cfg


def _crossentropy_of_probabilities(y_pred, y, t):
    """Keras' crossentropy of probability rows ``y`` (renormalised, clipped to [EPSILON,
    1 - EPSILON]) against target rows ``t``: per-sample losses and the gradient, divided by the
    batch, with respect to ``y`` (clipped cells pass no gradient, as in Keras)."""
    s = y.sum(axis=-1, keepdims=True)
    q = y / s
    p = np.clip(q, EPSILON, 1.0 - EPSILON)
    losses = -np.sum(t * np.log(p), axis=-1)
    inside = (q > EPSILON) & (q < 1.0 - EPSILON)
    g_q = np.where(inside, -t / p, 0.0)
    dy = (g_q - np.sum(g_q * q, axis=-1, keepdims=True)) / s
    dy *= np.float32(1.0 / len(y))
    return _per_sample(losses, y_pred.shape[0]), _f32(dy).reshape(y_pred.shape)


class CategoricalCrossentropy(_SmoothedCrossentropy):
    """Crossentropy with one-hot (or soft) targets of the predictions' shape."""

    fused_activation = "softmax"

    def prepare_targets(self, y_true: Any, y_pred_shape: tuple[int, ...]) -> np.ndarray:
        y = _f32(y_true)
        shape = tuple(y_pred_shape)
        if y.shape != shape:
            hint = ""
            if y.shape == shape[:-1] or y.shape == shape[:-1] + (1,):
                hint = (
                    " These look like integer labels: use loss='sparse_categorical_crossentropy'"
                    " or one-hot encode them."
                )
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape. Received: "
                f"target.shape={y.shape}, output.shape={shape}.{hint}"
            )
        if self.label_smoothing:
            k = y.shape[-1]
            y = _f32(y * (1.0 - self.label_smoothing) + self.label_smoothing / k)
        return y

    def _fused(self, t, logits):
        z = _rows(_f32(logits))
        losses, d = ops.softmax_cross_entropy(z, _rows(t))
        d *= np.float32(1.0 / len(z))
        return _per_sample(losses, logits.shape[0]), d.reshape(logits.shape)

    def _from_probabilities(self, y_true, y_pred):
        return _crossentropy_of_probabilities(y_pred, _rows(_f32(y_pred)), _rows(y_true))


class BinaryCrossentropy(_SmoothedCrossentropy):
    """Binary crossentropy, averaged over the last axis then over the batch."""

    fused_activation = "sigmoid"

    def prepare_targets(self, y_true: Any, y_pred_shape: tuple[int, ...]) -> np.ndarray:
        y = _same_shape_targets(_f32(y_true), tuple(y_pred_shape))
        if self.label_smoothing:
            y = _f32(y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing)
        return y

    def _fused(self, t, logits):
        z = _f32(logits)
        z2 = z.reshape(z.shape[0], -1) if z.ndim != 2 else z
        losses, d = ops.sigmoid_binary_cross_entropy(z2, t.reshape(z2.shape))
        d *= np.float32(1.0 / d.size)
        return losses.reshape(z.shape[0], -1).mean(axis=1), d.reshape(z.shape)

    def _from_probabilities(self, t, y_pred):
        y = _f32(y_pred)
        p = np.clip(y, EPSILON, 1.0 - EPSILON)
        elem = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
        inside = (y > EPSILON) & (y < 1.0 - EPSILON)
        dy = np.where(inside, (p - t) / (p * (1.0 - p)), 0.0) * (1.0 / y.size)
        return elem.reshape(y.shape[0], -1).mean(axis=1), _f32(dy)


class MeanSquaredError(Loss):
    """Computes the mean of squares of errors between labels and predictions.

    Formula: ``loss = mean(square(y_true - y_pred))``.

    Args:
        name: Optional name for the loss instance.
        **kwargs: ``reduction`` (only ``"sum_over_batch_size"``) and ``dtype``.
    """

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name or "mean_squared_error", **kwargs)

    def prepare_targets(self, y_true: Any, y_pred_shape: tuple[int, ...]) -> np.ndarray:
        return _same_shape_targets(_f32(y_true), tuple(y_pred_shape))

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        diff = _f32(y_pred) - y_true
        per = (diff * diff).reshape(diff.shape[0], -1).mean(axis=1)
        return per, _f32(diff * (2.0 / diff.size))


_REGISTRY = Registry(
    "loss",
    Loss,
    (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError),
    aliases={
        "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
        "categorical_crossentropy": CategoricalCrossentropy,
        "binary_crossentropy": BinaryCrossentropy,
        "mean_squared_error": MeanSquaredError,
        "mse": MeanSquaredError,
    },
)


def _fn(cls):
    def f(y_true, y_pred, from_logits=False):
        kw = {} if cls is MeanSquaredError else {"from_logits": from_logits}
        loss = cls(**kw)
        y_pred = _f32(y_pred)
        per, _ = loss.compute(loss.prepare_targets(y_true, y_pred.shape), y_pred)
        return per

    f.__name__ = f.__qualname__ = _FUNCTION_NAMES[cls]
    f.__doc__ = (
        f"Computes the {cls.__name__} loss per sample, as ``keras.losses.{f.__name__}``.\n\n"
        "Args:\n"
        "    y_true: Ground truth values.\n"
        "    y_pred: The predicted values.\n"
        "    from_logits: Whether ``y_pred`` is expected to be a logits tensor (ignored by\n"
        "        mean_squared_error).\n\n"
        "Returns:\n"
        "    The loss of each sample, a float32 NumPy array.\n"
    )
    return f


_FUNCTION_NAMES = {
    SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
    CategoricalCrossentropy: "categorical_crossentropy",
    BinaryCrossentropy: "binary_crossentropy",
    MeanSquaredError: "mean_squared_error",
}


sparse_categorical_crossentropy = _fn(SparseCategoricalCrossentropy)
categorical_crossentropy = _fn(CategoricalCrossentropy)
binary_crossentropy = _fn(BinaryCrossentropy)
mean_squared_error = _fn(MeanSquaredError)
_FUNCS = {
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
}


def get(identifier) -> Loss:
    """Resolve a loss name, a function of this module, a config dict or a Loss instance."""
    if callable(identifier) and not isinstance(identifier, Loss) and identifier in _FUNCS:
        return _FUNCS[identifier]()
    return _REGISTRY.get(identifier)


serialize = _REGISTRY.serialize
