"""Image augmentation layers: RandomFlip, RandomRotation, RandomZoom (Keras 3 semantics).

The layers transform a batch ``(n, h, w, c)`` (or one unbatched image ``(h, w, c)``) only when
called with ``training=True`` (as ``fit`` does); otherwise they return their input unchanged.
(Keras 3 also augments when ``training`` is left unspecified; fastconv's ``Layer.__call__``
currently resolves an unspecified ``training`` to False, so pass ``training=True`` to look at
augmented images. ``forward`` already treats ``training=None`` as True.)

Each image gets its own random transform. Random numbers come from the layer's own generator when
``seed`` is given, else from fastconv's global generator, so ``fastconv.utils.set_random_seed``
makes unseeded layers reproducible.

RandomRotation and RandomZoom are affine resamplings computed as in Keras'
``ops.image.affine_transform``: the output pixel at column ``x``, row ``y`` reads the input at
``(a0*x + a1*y + a2, b0*x + b1*y + b2)``, rotations and zooms are about the image centre
``((w-1)/2, (h-1)/2)``, and points outside the input are filled by ``fill_mode``:

* ``reflect``:  ``(d c b a | a b c d | d c b a)``, reflection about the edge of the last pixel;
* ``wrap``:     ``(a b c d | a b c d | a b c d)``;
* ``constant``: ``(k k k k | a b c d | k k k k)`` with ``k = fill_value`` (bilinear taps outside
  the image read ``k``);
* ``nearest``:  ``(a a a a | a b c d | d d d d)``.

Sampling is vectorised over the whole batch: per-image 2x3 matrices give the source coordinates of
every output pixel at once, and 4 (bilinear) or 1 (nearest) gathers produce the output.
``backward`` is the exact transpose of the sampling (a scatter-add), so the layers can also sit
after trainable layers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import _random
from .base import Layer, format_shape, register_layer

__all__ = ["RandomFlip", "RandomRotation", "RandomZoom"]

HORIZONTAL = "horizontal"
VERTICAL = "vertical"
HORIZONTAL_AND_VERTICAL = "horizontal_and_vertical"
_FLIP_MODES = (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL)
_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


# ------------------------------------------------------------------------------- sampling
def _fix_index(idx, n, fill_mode):
    """Map integer indices (any range) into ``[0, n)`` following ``fill_mode``."""
    if fill_mode == "reflect":
        m = np.mod(idx, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if fill_mode == "wrap":
        return np.mod(idx, n)
    return np.clip(idx, 0, n - 1)  # nearest; constant (validity handled by the caller)


def _axis_taps(coord, n, fill_mode, interpolation):
    """[(index, weight)] along one axis for float64 source coordinates ``coord``."""
    if interpolation == "nearest":
        lo = np.floor(coord + 0.5)
        taps = [(lo, None)]
    else:
        lo = np.floor(coord)
        frac = (coord - lo).astype(np.float32)
        taps = [(lo, 1.0 - frac), (lo + 1.0, frac)]
    out = []
    for idx, w in taps:
        idx = idx.astype(np.int32 if 2 * n < 2**31 else np.int64)
        if fill_mode == "constant":
            valid = (idx >= 0) & (idx < n)
            w = valid.astype(np.float32) if w is None else w * valid
        out.append((_fix_index(idx, n, fill_mode), w))
    return out


def _sampling_plan(matrices, h, w, fill_mode, interpolation):
    """Gather plan of an affine resampling of a ``(n, h, w, c)`` batch.

    ``matrices`` is ``(n, 6)``: ``[a0, a1, a2, b0, b1, b2]`` per image. Returns ``taps`` (a list of
    ``(flat_index, weight)`` over the ``n*h*w`` output pixels, indices into the input viewed as
    ``(n*h*w, c)``, weight None meaning 1) and ``fill_weight`` (the weight of ``fill_value`` per
    output pixel in constant mode, else None).
    """
    m = np.asarray(matrices, dtype=np.float64).reshape(-1, 6)
    n = m.shape[0]
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    col = lambda k: m[:, k, None, None]  # noqa: E731
    src_x = col(0) * xs + col(1) * ys + col(2)  # (n, h, w)
    src_y = col(3) * xs + col(4) * ys + col(5)
    tx = _axis_taps(src_x, w, fill_mode, interpolation)
    ty = _axis_taps(src_y, h, fill_mode, interpolation)
    itype = np.int32 if n * h * w < 2**31 else np.int64
    base = (np.arange(n, dtype=itype) * itype(h * w))[:, None, None]
    taps = []
    total = None
    for iy, wy in ty:
        row = base + iy * w
        for ix, wx in tx:
            if wy is None:
                weight = wx
            elif wx is None:
                weight = wy
            else:
                weight = wy * wx
            taps.append(((row + ix).reshape(-1), None if weight is None else weight.reshape(-1)))
            if fill_mode == "constant":
                total = weight if total is None else total + weight
    fill_weight = None
    if fill_mode == "constant":
        fill_weight = np.maximum(1.0 - total.reshape(-1), 0.0).astype(np.float32)
    return taps, fill_weight


def _affine_transform(images, matrices, fill_mode, interpolation, fill_value):
    n, h, w, c = images.shape
    taps, fill_weight = _sampling_plan(matrices, h, w, fill_mode, interpolation)
    # gather whole pixels: view each row of c float32 as one opaque item (faster than axis=0)
    flat = np.ascontiguousarray(images).reshape(n * h * w, c).view(np.dtype((np.void, 4 * c)))
    out = None
    for idx, weight in taps:
        g = np.take(flat.reshape(-1), idx).view(np.float32).reshape(-1, c)
        if weight is not None:
            g *= weight[:, None]
        if out is None:
            out = g
        else:
            out += g
    if fill_weight is not None and fill_value != 0.0:
        out += np.float32(fill_value) * fill_weight[:, None]
    return out.reshape(n, h, w, c)


def _affine_transform_transpose(dy, matrices, fill_mode, interpolation):
    """Gradient of ``_affine_transform`` with respect to the images (scatter-add of ``dy``)."""
    n, h, w, c = dy.shape
    taps, _ = _sampling_plan(matrices, h, w, fill_mode, interpolation)
    size = n * h * w
    idx = np.concatenate([t[0] for t in taps])
    weights = [np.ones(size, np.float32) if t[1] is None else t[1] for t in taps]
    g = dy.reshape(size, c).astype(np.float64)
    dx = np.empty((size, c), dtype=np.float32)
    for ch in range(c):
        contrib = np.concatenate([wt * g[:, ch] for wt in weights])
        dx[:, ch] = np.bincount(idx, weights=contrib, minlength=size)
    return dx.reshape(n, h, w, c)


# ------------------------------------------------------------------------------- base
def _check_data_format(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            "fastconv image layers support only data_format='channels_last'. "
            f"Received: data_format={data_format!r}"
        )


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"Unknown `{what}` {value!r}. Expected one of {choices}.")
    return value


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be None or a non-negative integer. Received: seed={seed!r}")
    return int(seed)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _factor_range(factor, name, bound=1.0):
    """Keras' factor convention: ``f`` -> ``(-|f|, |f|)``; ``(a, b)`` -> ``sorted``."""
    msg = (
        f"The `{name}` argument should be a number (or a list of two numbers) in the range "
        f"[{-bound}, {bound}]. Received: {name}={factor!r}"
    )
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) for v in factor):
            raise ValueError(msg)
        lower, upper = sorted(float(v) for v in factor)
    elif _is_number(factor):
        lower, upper = -abs(float(factor)), abs(float(factor))
    else:
        raise ValueError(msg)
    if lower < -bound or upper > bound:
        raise ValueError(msg)
    return lower, upper


def _config_factor(factor):
    return list(factor) if isinstance(factor, (tuple, list)) else factor


class _RandomImageLayer(Layer):
    """Shared plumbing: seeding, (un)batched inputs, identity at inference."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(data_format)
        self.seed = _check_seed(seed)
        self._rng = None if self.seed is None else np.random.default_rng(self.seed)
        self._tape = None

    def _generator(self):
        return self._rng if self._rng is not None else _random.get_rng()

    def check_input_shape(self, shape):
        shape = tuple(shape)
        if len(shape) not in (3, 4):
            raise self._incompatible(
                "expected a batch of images (batch, height, width, channels) or one image "
                f"(height, width, channels), found ndim={len(shape)}",
                shape,
            )

    def forward(self, x, training=False):
        self._tape = None
        if training is None:  # Keras: an unspecified `training` means the call default, True
            training = True
        if not training:
            return x
        x = np.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(
                f"Layer '{self.name}' expects images of rank 3 (one image) or 4 (a batch). "
                f"Received shape {format_shape(x.shape)}"
            )
        unbatched = x.ndim == 3
        xb = np.ascontiguousarray(x[None] if unbatched else x, dtype=np.float32)
        if xb.size == 0:
            return x
        params = self._draw(xb.shape[0], xb.shape[1], xb.shape[2])
        y = self._apply(xb, params)
        self._tape = (params, unbatched)
        return y[0] if unbatched else y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        if self._tape is None:
            return dy
        params, unbatched = self._tape
        dyb = np.ascontiguousarray(dy[None] if unbatched else dy, dtype=np.float32)
        dx = self._apply_transpose(dyb, params)
        return dx[0] if unbatched else dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(seed=self.seed, data_format="channels_last")
        return cfg


class _AffineLayer(_RandomImageLayer):
    def __init__(
        self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        self.fill_mode = _check_choice(fill_mode, _FILL_MODES, "fill_mode")
        self.interpolation = _check_choice(interpolation, _INTERPOLATIONS, "interpolation")
        if not _is_number(fill_value):
            raise ValueError(f"`fill_value` must be a finite number. Received: {fill_value!r}")
        self.fill_value = float(fill_value)

    def _apply(self, x, matrices):
        return _affine_transform(x, matrices, self.fill_mode, self.interpolation, self.fill_value)

    def _apply_transpose(self, dy, matrices):
        return _affine_transform_transpose(dy, matrices, self.fill_mode, self.interpolation)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            fill_mode=self.fill_mode, interpolation=self.interpolation, fill_value=self.fill_value
        )
        return cfg


# ------------------------------------------------------------------------------- layers
@register_layer
class RandomFlip(_RandomImageLayer):
    """Randomly flips each image left-right and/or top-bottom while training.

    ``mode`` is ``"horizontal"``, ``"vertical"`` or ``"horizontal_and_vertical"`` (default). As in
    Keras 3, each image is flipped with probability 1/2; with ``"horizontal_and_vertical"`` the
    same draw decides both flips (an image is either flipped both ways or not at all).
    """

    def __init__(
        self,
        mode: str = HORIZONTAL_AND_VERTICAL,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_MODES:
            raise ValueError(
                f"RandomFlip layer {self.name} received an unknown mode argument {mode!r}. "
                f"Expected one of {_FLIP_MODES}."
            )
        self.mode = mode

    def _draw(self, n, h, w):
        return self._generator().random(n) <= 0.5

    def _apply(self, x, flips):
        y = x.copy()
        if not flips.any():
            return y
        sel = y[flips]
        if self.mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):
            sel = sel[:, :, ::-1]
        if self.mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):
            sel = sel[:, ::-1]
        y[flips] = sel
        return y

    # a flip is its own transpose
    _apply_transpose = _apply

    def get_config(self):
        cfg = super().get_config()
        cfg["mode"] = self.mode
        return cfg


@register_layer
class RandomRotation(_AffineLayer):
    """Rotates each image by a random angle about its centre while training.

    ``factor`` is a fraction of 2*pi: a float ``f`` draws angles in ``[-f*2pi, f*2pi]``, a pair
    ``(lower, upper)`` in ``[lower*2pi, upper*2pi]``. Positive angles rotate counter-clockwise.
    """

    def __init__(
        self,
        factor: float | tuple[float, float],
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            fill_mode=fill_mode,
            interpolation=interpolation,
            fill_value=fill_value,
            seed=seed,
            data_format=data_format,
            **kwargs,
        )
        self.lower, self.upper = _factor_range(factor, "factor")
        self.factor = factor

    def _draw(self, n, h, w):
        angles = self._generator().uniform(self.lower, self.upper, n) * (2.0 * math.pi)
        return rotation_matrices(angles, h, w)

    def get_config(self):
        cfg = super().get_config()
        cfg["factor"] = _config_factor(self.factor)
        return cfg


@register_layer
class RandomZoom(_AffineLayer):
    """Zooms each image in or out by a random amount about its centre while training.

    ``height_factor`` ``f`` draws a vertical zoom in ``[-f, f]`` (a pair ``(lower, upper)`` in
    ``[lower, upper]``): negative values zoom in (the output shows a region ``1 + f`` times the
    size of the image), positive values zoom out. ``width_factor`` does the same horizontally;
    ``None`` (default) keeps the aspect ratio by using the vertical zoom for both axes.
    """

    def __init__(
        self,
        height_factor: float | tuple[float, float],
        width_factor: float | tuple[float, float] | None = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            fill_mode=fill_mode,
            interpolation=interpolation,
            fill_value=fill_value,
            seed=seed,
            data_format=data_format,
            **kwargs,
        )
        self.height_lower, self.height_upper = _factor_range(height_factor, "height_factor")
        self.height_factor = height_factor
        self.width_factor = width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _factor_range(width_factor, "width_factor")

    def _draw(self, n, h, w):
        rng = self._generator()
        zy = rng.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, n)
        if self.width_factor is None:
            zx = zy
        else:
            zx = rng.uniform(1.0 + self.width_lower, 1.0 + self.width_upper, n)
        return zoom_matrices(zx, zy, h, w)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            height_factor=_config_factor(self.height_factor),
            width_factor=_config_factor(self.width_factor),
        )
        return cfg


# ------------------------------------------------------------------------------- matrices
def rotation_matrices(angles, h, w):
    """``(n, 6)`` Keras affine matrices rotating by ``angles`` (radians) about the centre."""
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    cos, sin = np.cos(a), np.sin(a)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    x_off = cx - (cos * cx - sin * cy)
    y_off = cy - (sin * cx + cos * cy)
    return np.stack([cos, -sin, x_off, sin, cos, y_off], axis=1)


def zoom_matrices(zx, zy, h, w):
    """``(n, 6)`` Keras affine matrices scaling source coordinates by ``zx``, ``zy`` about the
    centre (``z < 1`` zooms in)."""
    zx = np.asarray(zx, dtype=np.float64).reshape(-1)
    zy = np.asarray(zy, dtype=np.float64).reshape(-1)
    zeros = np.zeros_like(zx)
    x_off = (w - 1) / 2.0 * (1.0 - zx)
    y_off = (h - 1) / 2.0 * (1.0 - zy)
    return np.stack([zx, zeros, x_off, zeros, zy, y_off], axis=1)
