"""Images where one coloured square decides the class, and a small convnet trained on them:
the ground truth the Grad-CAM and filter-pattern tests look for."""

from __future__ import annotations

import numpy as np

SIZE, SIDE = 24, 6
COLOURS = np.array([[0.1, 0.2, 1.0], [1.0, 0.2, 0.1]], np.float32)  # class 0 blue, class 1 red


def square_images(n, rng):
    """(images (n, 24, 24, 3) in [0, 1], labels (n,), top-left corners (n, 2)): grey noise with
    one 6x6 square, red for class 1 and blue for class 0, anywhere in the image."""
    x = rng.uniform(0.3, 0.6, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    corners = rng.integers(0, SIZE - SIDE + 1, (n, 2))
    for i, (r, c) in enumerate(corners):
        x[i, r : r + SIDE, c : c + SIDE] = COLOURS[y[i]]
    return x, y, corners


def square_model(fastconv, output="sigmoid"):
    """Conv(8) - pool - Conv(16) - Flatten - Dense: 'sigmoid' (one unit, as the lecture's
    cats-vs-dogs model) or 'softmax' (two classes)."""
    layers = fastconv.layers
    inputs = fastconv.Input(shape=(SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv_a")(inputs)
    x = layers.MaxPooling2D(2, name="pool_a")(x)
    x = layers.Conv2D(16, 3, activation="relu", name="conv_b")(x)
    x = layers.Flatten(name="flatten")(x)
    units = 1 if output == "sigmoid" else 2
    outputs = layers.Dense(units, activation=output, name="classifier")(x)
    return fastconv.Model(inputs, outputs)


def trained_square_model(fastconv, seed=0):
    """The sigmoid model trained to tell the squares apart (a few seconds)."""
    fastconv.utils.set_random_seed(seed)
    model = square_model(fastconv)
    model.compile(
        optimizer=fastconv.optimizers.Adam(0.003), loss="binary_crossentropy", metrics=["accuracy"]
    )
    x, y, _ = square_images(1200, np.random.default_rng(seed))
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    return model
