"""The optimizers a model trains with: updates against Keras 3's formulas, defaults, names."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastconv import optimizers


def _keras_reference(kind, w, grads, **kw):
    """Keras 3 update rules in float64."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if kind == "sgd":
            lr, mom, nest = (
                kw.get("learning_rate", 0.01),
                kw.get("momentum", 0.0),
                kw.get("nesterov", False),
            )
            if mom == 0:
                w = w - lr * g
            else:
                m = mom * m - lr * g
                w = w + (mom * m - lr * g if nest else m)
        elif kind == "rmsprop":
            lr, rho, eps = kw.get("learning_rate", 0.001), kw.get("rho", 0.9), 1e-7
            v = rho * v + (1 - rho) * g * g
            w = w - lr * g / np.sqrt(v + eps)
        elif kind == "adam":
            lr, b1, b2, eps = kw.get("learning_rate", 0.001), 0.9, 0.999, 1e-7
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            m = m + (g - m) * (1 - b1)
            v = v + (g * g - v) * (1 - b2)
            w = w - alpha * m / (np.sqrt(v) + eps)
    return w


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
    """An optimizer class, its arguments and the name of its rule in _keras_reference."""

    id: str
    kind: str
    cls: type
    kw: dict = dataclasses.field(default_factory=dict, hash=False)


OPTIMIZER_CASES = [
    OptimizerCase("sgd", "sgd", optimizers.SGD),
    OptimizerCase("sgd-momentum", "sgd", optimizers.SGD, {"learning_rate": 0.05, "momentum": 0.9}),
    OptimizerCase(
        "sgd-nesterov",
        "sgd",
        optimizers.SGD,
        {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    ),
    OptimizerCase("rmsprop", "rmsprop", optimizers.RMSprop),
    OptimizerCase(
        "rmsprop-rho", "rmsprop", optimizers.RMSprop, {"learning_rate": 0.01, "rho": 0.8}
    ),
    OptimizerCase("adam", "adam", optimizers.Adam),
    OptimizerCase("adam-lr", "adam", optimizers.Adam, {"learning_rate": 0.02}),
]


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[c.id for c in OPTIMIZER_CASES])
def test_optimizer_updates_match_keras_formulas(case, rng):
    w0 = rng.standard_normal((7, 5)).astype(np.float32)
    grads = [rng.standard_normal((7, 5)).astype(np.float32) for _ in range(6)]
    opt = case.cls(**case.kw)
    w = w0.copy()
    for g in grads:
        opt.apply([g], [w])
    want = _keras_reference(case.kind, w0, grads, **case.kw)
    np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-6)
    assert opt.iterations == 6
    assert not np.allclose(w, w0)


def test_optimizer_defaults_and_names():
    assert optimizers.get("rmsprop").get_config()["learning_rate"] == 0.001
    assert optimizers.get("rmsprop").rho == 0.9
    assert optimizers.get("adam").beta_2 == 0.999
    assert optimizers.get("sgd").learning_rate == 0.01
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.get("adagrad-ish")
