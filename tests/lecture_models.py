"""The lecture's two convnets, uncompiled, as the tests build them: the command line's builders
(the listings of the lecture)."""

from __future__ import annotations

from fastconv.cli import cats_vs_dogs_convnet as cats_vs_dogs_model
from fastconv.cli import mnist_convnet as lecture_model

__all__ = ["cats_vs_dogs_model", "lecture_model"]
