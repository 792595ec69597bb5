"""The lecture's two convnets, written once as its listings build them.

Each builder takes the Keras-like module to build with (``fastconv`` by default; ``keras`` itself
works too), so the command line, the tests, the benchmarks and the examples build one graph, and
the benchmarks can build the very same graph in Keras.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

from .. import layers
from ..layers.input_layer import Input
from ..models import Model, Sequential

__all__ = [
    "mnist_convnet",
    "cats_vs_dogs_convnet",
    "build_mnist_model",
    "build_cats_vs_dogs_model",
    "MNIST_PARAMETERS",
    "CATS_VS_DOGS_PARAMETERS",
]

MNIST_PARAMETERS = 104_202
CATS_VS_DOGS_PARAMETERS = 991_041


# What the builders use of a Keras-like module, from fastconv itself (the default).
_FASTCONV = SimpleNamespace(layers=layers, Input=Input, Model=Model, Sequential=Sequential)


def _keras_module(keras: ModuleType | None) -> Any:
    return _FASTCONV if keras is None else keras


def mnist_convnet(keras: ModuleType | None = None) -> Any:
    """The lecture's MNIST convnet (28x28x1 in, softmax over 10 classes), not compiled."""
    keras = _keras_module(keras)
    layers_ = keras.layers
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers_.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = layers_.MaxPooling2D(pool_size=2)(x)
    x = layers_.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = layers_.MaxPooling2D(pool_size=2)(x)
    x = layers_.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = layers_.Flatten()(x)
    outputs = layers_.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def cats_vs_dogs_convnet(keras: ModuleType | None = None, augment: bool = False) -> Any:
    """The lecture's 180x180x3 convnet (rescaling, five convolutions, sigmoid out), not compiled.
    With ``augment``, the chapter's data augmentation after the input and Dropout(0.5) before
    the classifier."""
    keras = _keras_module(keras)
    layers_ = keras.layers
    inputs = keras.Input(shape=(180, 180, 3))
    x = inputs
    if augment:
        data_augmentation = keras.Sequential(
            [layers_.RandomFlip("horizontal"), layers_.RandomRotation(0.1), layers_.RandomZoom(0.2)]
        )
        x = data_augmentation(x)
    x = layers_.Rescaling(1.0 / 255)(x)
    for i, filters in enumerate((32, 64, 128, 256, 256)):
        x = layers_.Conv2D(filters=filters, kernel_size=3, activation="relu")(x)
        if i < 4:
            x = layers_.MaxPooling2D(pool_size=2)(x)
    x = layers_.Flatten()(x)
    if augment:
        x = layers_.Dropout(0.5)(x)
    outputs = layers_.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def build_mnist_model(keras: ModuleType | None = None) -> Any:
    """``mnist_convnet`` compiled the lecture's way (rmsprop, sparse crossentropy, accuracy)."""
    model = mnist_convnet(keras)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_cats_vs_dogs_model(keras: ModuleType | None = None, augment: bool = False) -> Any:
    """``cats_vs_dogs_convnet`` compiled the lecture's way (rmsprop, binary crossentropy)."""
    model = cats_vs_dogs_convnet(keras, augment)
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model
