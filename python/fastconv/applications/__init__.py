"""Ready-made models: the lecture's two convnets (``lecture``) and VGG16 (``vgg16``)."""

from . import transfer, vgg16
from .lecture import (
    build_cats_vs_dogs_model,
    build_mnist_model,
    cats_vs_dogs_convnet,
    mnist_convnet,
)
from .vgg16 import VGG16

__all__ = [
    "VGG16",
    "vgg16",
    "transfer",
    "mnist_convnet",
    "cats_vs_dogs_convnet",
    "build_mnist_model",
    "build_cats_vs_dogs_model",
]
