"""fastconv: fast CNN training on multicore CPUs, with a Keras-shaped API."""

from __future__ import annotations

# First: the run-time settings module sets the OpenMP environment before the kernels load.
from fastconv.runtime import (
    MAX_THREADS,
    __version__,
    conv_algorithm_choices,
    get_conv_algorithm,
    get_num_threads,
    info,
    set_conv_algorithm,
    set_num_threads,
    set_winograd,
    winograd_enabled,
)

# isort: split
# The Keras-shaped API: Input, Model, Sequential, layers, optimizers, losses, metrics, callbacks,
# models (load_model), applications, datasets, utils.
from fastconv import applications, datasets, utils  # noqa: F401
from fastconv._api import *  # noqa: F403

__all__ = [
    "MAX_THREADS",
    "__version__",
    "conv_algorithm_choices",
    "get_conv_algorithm",
    "get_num_threads",
    "info",
    "set_conv_algorithm",
    "set_num_threads",
    "set_winograd",
    "winograd_enabled",
]
