"""Photo-like JPEG-able images in the layout of Kaggle's dogs-vs-cats data, for the image data
set and command-line tests."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def animal_image(kind, rng, size):
    """Warm picture with a bright disc (cat) or cool picture with a bar (dog)."""
    w, h = size
    base = np.array([200, 110, 60] if kind == "cat" else [50, 110, 200], np.float32)
    arr = base + rng.normal(0, 25, (h, w, 3))
    yy, xx = np.mgrid[:h, :w]
    if kind == "cat":
        mask = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(w, h) / 4) ** 2
    else:
        mask = np.abs(xx - w / 2) < w / 10
    arr[mask] = 255 - arr[mask]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_kaggle_train(directory, n_per_class, rng, sizes=(40, 110)):
    """Kaggle's dogs-vs-cats train folder: cat.N.jpg and dog.N.jpg of varied sizes."""
    os.makedirs(directory, exist_ok=True)
    for kind in ("cat", "dog"):
        for i in range(n_per_class):
            size = tuple(int(s) for s in rng.integers(sizes[0], sizes[1], 2))
            animal_image(kind, rng, size).save(os.path.join(directory, f"{kind}.{i}.jpg"))
