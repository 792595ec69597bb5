"""Keras-shaped layers (``from fastconv import layers``)."""

from .base import LAYER_REGISTRY, Layer, register_layer
from .convolutional import Conv2D
from .core import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    ReLU,
    Rescaling,
    Softmax,
)
from .input_layer import Input, InputLayer
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D
from .preprocessing import RandomFlip, RandomRotation, RandomZoom

Convolution2D = Conv2D

__all__ = [
    "Layer",
    "register_layer",
    "LAYER_REGISTRY",
    "Input",
    "InputLayer",
    "Dense",
    "Flatten",
    "Activation",
    "ReLU",
    "Softmax",
    "Dropout",
    "Rescaling",
    "Conv2D",
    "Convolution2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "MaxPool2D",
    "AvgPool2D",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
]
