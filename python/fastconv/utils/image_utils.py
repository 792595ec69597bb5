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


_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}


def _channels_last(data_format):
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first': {data_format}")
    return data_format != "channels_first"


def load_img(
    path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False
):
    """A PIL image from ``path`` (a path or a file object), as ``keras.utils.load_img``:
    ``color_mode`` rgb | rgba | grayscale (16- and 32-bit grey images kept as they are),
    resized to ``target_size`` (height, width) with ``interpolation``; ``keep_aspect_ratio``
    crops the centre to the target's aspect ratio first."""
    modes = {"rgb": ("RGB",), "rgba": ("RGBA",), "grayscale": ("L", "I;16", "I")}
    if color_mode not in modes:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    with Image.open(path) as img:
        img.load()
        if img.mode not in modes[color_mode]:
            img = img.convert(modes[color_mode][0])
        else:
            img = img.copy()
    if target_size is None:
        return img
    h, w = target_size
    if img.size == (w, h):
        return img
    if interpolation not in _FILTERS:
        raise ValueError(
            f"Invalid interpolation method {interpolation} specified. Supported methods are "
            + ", ".join(_FILTERS)
        )
    if keep_aspect_ratio:
        width, height = img.size
        crop_h = min(height, (width * h) // w)
        crop_w = min(width, (height * w) // h)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        img = img.crop((left, top, left + crop_w, top + crop_h))
    return img.resize((w, h), _FILTERS[interpolation])


def img_to_array(img, data_format=None, dtype=None) -> np.ndarray:
    """(height, width, channels) float32 array (``dtype``) of a PIL image, as
    ``keras.utils.img_to_array``; channels first with ``data_format="channels_first"``."""
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[..., None]
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x if _channels_last(data_format) else x.transpose(2, 0, 1)


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image of a (height, width, 1 | 3 | 4) array, as ``keras.utils.array_to_img``:
    ``scale`` maps the array's minimum to 0 and its maximum to 255 (float32 arithmetic, then
    truncated to uint8; fastconv clips values outside 0..255 instead of wrapping them)."""
    x = np.array(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(
            f"Expected image array to have rank 3 (single image). Got array with shape: {x.shape}"
        )
    if not _channels_last(data_format):
        x = x.transpose(1, 2, 0)
    if x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Unsupported channel number: {x.shape[-1]}")
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    if x.shape[-1] == 1 and np.max(x) > 255:  # 32-bit grey, PIL mode "I", as Keras
        return Image.fromarray(x[..., 0].astype("int32"), "I")
    x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        return Image.fromarray(x[..., 0], "L")
    return Image.fromarray(x, "RGB" if x.shape[-1] == 3 else "RGBA")
