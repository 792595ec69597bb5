"""The chapter's pretrained section, written once as its listings build it: a frozen VGG16 base
inside a model with data augmentation in front ("feature extraction with data augmentation"),
then fine-tuning with the last convolution block (block5) unfrozen and a low learning rate.

The command line (``fastconv train cats-vs-dogs --pretrained vgg16 [--fine-tune]``) and
``examples/pretrained_vgg16.py`` use these, so both build the same graph as the chapter.
"""

from __future__ import annotations

import os
from typing import Any

from .. import layers, optimizers
from ..layers.input_layer import Input
from ..models import Model, Sequential
from . import vgg16

__all__ = [
    "data_augmentation",
    "frozen_base_classifier",
    "unfreeze_top_block",
    "compile_for_fine_tuning",
    "conv_base",
    "FINE_TUNING_LEARNING_RATE",
]

#: The chapter's fine-tuning learning rate (RMSprop): small, so the pretrained filters of
#: block5 move little while the classifier on top is already trained.
FINE_TUNING_LEARNING_RATE = 1e-5


def data_augmentation() -> Sequential:
    """The chapter's augmentation stage: random horizontal flips, rotations and zooms."""
    return Sequential(
        [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)],
        name="data_augmentation",
    )


def conv_base(image_size: int = 180, weights: str | os.PathLike | None = "imagenet") -> Model:
    """VGG16 without its classifier for ``image_size`` square RGB images, frozen
    (``conv_base.trainable = False``), as the chapter instantiates it."""
    base = vgg16.VGG16(weights=weights, include_top=False, input_shape=(image_size, image_size, 3))
    base.trainable = False
    return base


def frozen_base_classifier(base: Model, augment: bool = True) -> Model:
    """The chapter's model around a (frozen) convolutional base: augmentation, VGG16's
    ``preprocess_input``, the base, Flatten, Dense(256), Dropout(0.5), a sigmoid unit; compiled
    with RMSprop and binary crossentropy."""
    inputs = Input(shape=base.input_shape[1:])
    x = data_augmentation()(inputs) if augment else inputs
    x = vgg16.preprocess_input(x)
    x = base(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256)(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def unfreeze_top_block(base: Model, last_layers: int = 4) -> None:
    """The chapter's fine-tuning step: the base trainable again, all but its last
    ``last_layers`` layers (VGG16: block5's three convolutions and its pooling) frozen."""
    base.trainable = True
    for layer in base.layers[:-last_layers]:
        layer.trainable = False


def compile_for_fine_tuning(model: Any, learning_rate: float = FINE_TUNING_LEARNING_RATE) -> None:
    """Recompile after :func:`unfreeze_top_block` (the trainable set changed) with the
    chapter's low learning rate."""
    model.compile(
        loss="binary_crossentropy",
        optimizer=optimizers.RMSprop(learning_rate=learning_rate),
        metrics=["accuracy"],
    )
