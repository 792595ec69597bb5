"""A small separable problem and small models over it, shared by the training tests."""

from __future__ import annotations

import numpy as np
from fastconv import Input, _random, layers
from fastconv.models import Model


def toy_data(rng, n=96, size=6):
    """Two separable classes of small images: bright left half vs bright right half."""
    x = rng.random((n, size, size, 1)).astype(np.float32) * 0.5
    y = rng.integers(0, 2, n)
    half = size // 2
    x[y == 0, :, :half] += 0.5
    x[y == 1, :, half:] += 0.5
    return x, y


def small_model(out="softmax", units=2):
    inputs = Input(shape=(6, 6, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    return Model(inputs, layers.Dense(units, activation=out)(x))


def compiled_small(metrics_=("accuracy",), optimizer="adam", seed=0):
    _random.set_random_seed(seed)
    m = small_model()
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics_))
    return m
