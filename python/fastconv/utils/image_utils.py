"""Keras' everyday image and label utilities: ``to_categorical``, ``load_img``,
``img_to_array``, ``array_to_img`` (NumPy arrays and PIL images)."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["to_categorical", "load_img", "img_to_array", "array_to_img"]


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """One-hot rows (float32) for integer class labels, as ``keras.utils.to_categorical``."""
    x = np.asarray(x)
    if x.size and (x.dtype.kind not in "iub" and not np.all(np.equal(np.mod(x, 1), 0))):
        raise ValueError("to_categorical expects integer class labels")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}); got {x.min()}..{x.max()}")
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", **kwargs):
    """A PIL image from ``path`` (``color_mode`` rgb | rgba | grayscale), resized to
    ``target_size`` (height, width) when given."""
    modes = {"rgb": "RGB", "rgba": "RGBA", "grayscale": "L"}
    if color_mode not in modes:
        raise ValueError(f"color_mode must be one of {sorted(modes)}; got {color_mode!r}")
    with Image.open(path) as img:
        img = img.convert(modes[color_mode])
    if target_size is not None:
        filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
        h, w = target_size
        if img.size != (w, h):
            img = img.resize((w, h), filters.get(interpolation, Image.NEAREST))
    return img


def img_to_array(img, data_format=None, dtype="float32") -> np.ndarray:
    """(height, width, channels) array of a PIL image."""
    x = np.asarray(img, dtype=dtype)
    return x[..., None] if x.ndim == 2 else x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image of a (height, width, 1 | 3 | 4) array; ``scale`` maps its range to 0-255."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Expected an image array of shape (h, w, 1|3|4); got {x.shape}")
    if scale:
        x = x - x.min()
        top = x.max()
        if top > 0:
            x = x / top
        x = x * 255
    x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        return Image.fromarray(x[..., 0], "L")
    return Image.fromarray(x, "RGB" if x.shape[-1] == 3 else "RGBA")
