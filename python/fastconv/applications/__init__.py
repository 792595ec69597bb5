"""Ready-made models: the lecture's two convnets (``lecture``)."""

from .lecture import (
    build_cats_vs_dogs_model,
    build_mnist_model,
    cats_vs_dogs_convnet,
    mnist_convnet,
)

__all__ = [
    "mnist_convnet",
    "cats_vs_dogs_convnet",
    "build_mnist_model",
    "build_cats_vs_dogs_model",
]
