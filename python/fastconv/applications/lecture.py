"""The lecture's two convnets, written once as its listings build them.

Each builder takes the Keras-like module to build with (``fastconv`` by default; ``keras`` itself
works too), so the command line, the tests, the benchmarks and the examples build one graph, and
the benchmarks can build the very same graph in Keras.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

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


def _keras_module(keras: ModuleType | None) -> ModuleType:
    if keras is None:
        import fastconv as keras  # the package root imports this module: resolve on call

    return keras


def mnist_convnet(keras: ModuleType | None = None) -> Any:
    """The lecture's MNIST convnet (28x28x1 in, softmax over 10 classes), not compiled."""
    keras = _keras_module(keras)
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def cats_vs_dogs_convnet(keras: ModuleType | None = None, augment: bool = False) -> Any:
    """The lecture's 180x180x3 convnet (rescaling, five convolutions, sigmoid out), not compiled.
    With ``augment``, the chapter's data augmentation after the input and Dropout(0.5) before
    the classifier."""
    keras = _keras_module(keras)
    layers = keras.layers
    inputs = keras.Input(shape=(180, 180, 3))
    x = inputs
    if augment:
        data_augmentation = keras.Sequential(
            [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)]
        )
        x = data_augmentation(x)
    x = layers.Rescaling(1.0 / 255)(x)
    for i, filters in enumerate((32, 64, 128, 256, 256)):
        x = layers.Conv2D(filters=filters, kernel_size=3, activation="relu")(x)
        if i < 4:
            x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Flatten()(x)
    if augment:
        x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
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
