"""Global seeded random state for fastconv (initialisers, shuffling, dropout).

``set_random_seed(seed)`` (re-exported as ``fastconv.utils.set_random_seed``) reseeds the global
:class:`numpy.random.Generator` used for weight initialisation, shuffling in ``fit`` and dropout
masks, and also seeds Python's ``random`` and NumPy's legacy global state, as Keras does.
"""

from __future__ import annotations

import random as _pyrandom

import numpy as np

__all__ = ["set_random_seed", "get_rng", "make_rng"]

_rng: np.random.Generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Make initialisation, shuffling and dropout reproducible."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be non-negative. Received: seed={seed}")
    seed = int(seed)
    _rng = np.random.default_rng(seed)
    _pyrandom.seed(seed)
    np.random.seed(seed % (2**32))


def get_rng() -> np.random.Generator:
    """The global generator (changes identity when ``set_random_seed`` is called)."""
    return _rng


def make_rng(seed: int | None = None) -> np.random.Generator:
    """A new generator: from ``seed`` if given, else drawn from the global generator."""
    if seed is None:
        return np.random.default_rng(int(_rng.integers(0, 2**63 - 1)))
    return np.random.default_rng(int(seed))
