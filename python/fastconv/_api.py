"""The Keras-shaped public API, for ``fastconv/__init__.py`` to re-export in one line:
``from fastconv._api import *``."""

from . import (
    activations,
    callbacks,
    distribution,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
)
from ._random import set_random_seed
from ._tensor import KerasTensor
from .layers.base import clear_session
from .layers.input_layer import Input
from .models import Model, Sequential, load_model

__all__ = [
    "Input",
    "KerasTensor",
    "Model",
    "Sequential",
    "layers",
    "optimizers",
    "losses",
    "metrics",
    "callbacks",
    "distribution",
    "models",
    "activations",
    "initializers",
    "load_model",
    "set_random_seed",
    "clear_session",
]
