"""Optimizers with Keras 3 defaults and update rules, applied in place by fastconv.ops.

State arrays (momentum, velocity, moments) are allocated once per weight array (float32,
C-contiguous) and reused at every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import ops
from ._registry import Registry

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "get", "serialize"]


class Optimizer:
    """Abstract optimizer base class.

    Args:
        learning_rate: A float, the learning rate.
        name: String. The name to use for momentum accumulator weights created by the
            optimizer.
        **kwargs: Keras' other optimizer arguments: ``clipnorm``, ``clipvalue``,
            ``global_clipnorm``, ``weight_decay`` and gradient accumulation are refused;
            ``use_ema`` and loss scaling are accepted and ignored.
    """

    def __init__(
        self, learning_rate: float = 0.001, name: str | None = None, **kwargs: Any
    ) -> None:
        for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
            if kwargs.pop(key, None) is not None:
                raise ValueError(f"fastconv optimizers do not support `{key}`")
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor"):
            kwargs.pop(key, None)
        if kwargs.pop("gradient_accumulation_steps", None) not in (None, 1):
            raise ValueError("fastconv optimizers do not support gradient accumulation")
        if kwargs:
            raise TypeError(f"Unexpected arguments to {type(self).__name__}: {sorted(kwargs)}")
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._state: dict[int, tuple] = {}

    @property
    def learning_rate(self) -> float:
        """The learning rate (a non-negative float); settable, e.g. by a schedule callback."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a non-negative number. Received: {value}")
        self._learning_rate = value

    def _slots(self, param):
        """Per-weight state arrays, created once (keyed by the weight array's identity)."""
        st = self._state.get(id(param))
        if st is None or st[0] is not param:
            st = (param,) + tuple(
                np.zeros(param.shape, dtype=np.float32) for _ in range(self._n_slots)
            )
            self._state[id(param)] = st
        return st[1:]

    _n_slots = 0

    def apply(self, grads: Sequence[np.ndarray | None], params: Sequence[np.ndarray]) -> None:
        """One update of ``params`` (float32 C-contiguous arrays, updated in place)."""
        self.iterations += 1
        for p, g in zip(params, grads):
            if g is None:
                continue
            self._update(p, g, self._slots(p))

    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[np.ndarray | None, np.ndarray]]
    ) -> None:
        """Apply gradients to variables.

        Args:
            grads_and_vars: List of ``(gradient, variable)`` pairs (NumPy arrays, updated in place).
        """
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    @property
    def variables(self) -> list[np.ndarray]:
        """The optimizer's state arrays (moments), one tuple per weight it has updated."""
        return [s for st in self._state.values() for s in st[1:]]

    def _update(self, p, g, slots):
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Returns the config of the optimizer (its constructor's arguments)."""
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """Creates an optimizer from its config."""
        return cls(**config)


class SGD(Optimizer):
    """Gradient descent (with momentum) optimizer.

    Update rule for parameter ``w`` with gradient ``g`` when ``momentum`` is 0:
    ``w = w - learning_rate * g``. When ``momentum`` is larger than 0:
    ``velocity = momentum * velocity - learning_rate * g``, ``w = w + velocity``; with
    ``nesterov=True``: ``w = w + momentum * velocity - learning_rate * g``.

    Args:
        learning_rate: A float, the learning rate. Defaults to ``0.01``.
        momentum: float hyperparameter >= 0 that accelerates gradient descent in the relevant
            direction and dampens oscillations. 0 is vanilla gradient descent. Defaults to
            ``0.0``.
        nesterov: boolean. Whether to apply Nesterov momentum. Defaults to ``False``.
        name: String. The name of the optimizer.
        **kwargs: See ``Optimizer``.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._n_slots = 1 if self.momentum else 0

    def _update(self, p, g, slots):
        ops.sgd_update(
            p,
            g,
            slots[0] if slots else None,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            nesterov=self.nesterov,
        )

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(momentum=self.momentum, nesterov=self.nesterov)
        return cfg


class RMSprop(Optimizer):
    """Optimizer that implements the RMSprop algorithm.

    The gist of RMSprop is to maintain a moving (discounted) average of the square of
    gradients and divide the gradient by the root of this average:
    ``v = rho * v + (1 - rho) * g**2``, ``w -= learning_rate * g / sqrt(v + epsilon)``
    (Keras 3's rule, from ``v = 0``).

    Args:
        learning_rate: A float, the learning rate. Defaults to ``0.001``.
        rho: float, defaults to 0.9. Discounting factor for the old gradients.
        momentum: float, defaults to 0.0. If not 0.0., the optimizer tracks the momentum
            value, with a decay rate equals to ``1 - momentum``.
        epsilon: A small constant for numerical stability. Defaults to 1e-7.
        centered: Boolean. If ``True``, gradients are normalized by the estimated variance of
            the gradient; if False, by the uncentered second moment. Defaults to ``False``.
        name: String. The name of the optimizer.
        **kwargs: See ``Optimizer``.
    """

    _n_slots = 1

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if momentum or centered:
            raise ValueError("fastconv RMSprop supports only momentum=0.0 and centered=False")
        self.rho, self.epsilon = float(rho), float(epsilon)
        self.momentum, self.centered = 0.0, False

    def _update(self, p, g, slots):
        ops.rmsprop_update(
            p, g, slots[0], learning_rate=self.learning_rate, rho=self.rho, epsilon=self.epsilon
        )

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(rho=self.rho, momentum=0.0, epsilon=self.epsilon, centered=False)
        return cfg


class Adam(Optimizer):
    """Optimizer that implements the Adam algorithm.

    Adam optimization is a stochastic gradient descent method that is based on adaptive
    estimation of first-order and second-order moments.

    Args:
        learning_rate: A float, the learning rate. Defaults to ``0.001``.
        beta_1: A float value. The exponential decay rate for the 1st moment estimates.
            Defaults to ``0.9``.
        beta_2: A float value. The exponential decay rate for the 2nd moment estimates.
            Defaults to ``0.999``.
        epsilon: A small constant for numerical stability. Defaults to ``1e-7``.
        amsgrad: Boolean. Whether to apply AMSGrad variant of this algorithm from the paper
            "On the Convergence of Adam and beyond". Defaults to ``False``.
        name: String. The name of the optimizer.
        **kwargs: See ``Optimizer``.
    """

    _n_slots = 2

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if amsgrad:
            raise ValueError("fastconv Adam does not support amsgrad=True")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = False

    def _update(self, p, g, slots):
        ops.adam_update(
            p,
            g,
            slots[0],
            slots[1],
            learning_rate=self.learning_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            iteration=self.iterations,
        )

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=False)
        return cfg


_REGISTRY = Registry(
    "optimizer",
    Optimizer,
    (SGD, RMSprop, Adam),
    aliases={"sgd": SGD, "rmsprop": RMSprop, "adam": Adam},
)
get = _REGISTRY.get
serialize = _REGISTRY.serialize
