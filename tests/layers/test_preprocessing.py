"""Augmentation layers RandomFlip, RandomRotation, RandomZoom (Keras 3 semantics)."""

from __future__ import annotations

import json
import math

import fastconv as keras
import numpy as np
import pytest
from fastconv import layers
from fastconv.models import load_model
from fastconv.utils import set_random_seed

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


# ------------------------------------------------------------------ independent float64 reference
def _extend(i, n, fill_mode):
    """Index of the input pixel seen at integer position ``i`` (None = fill value), straight from
    Keras' definitions of the fill modes."""
    if 0 <= i < n:
        return i
    if fill_mode == "constant":
        return None
    if fill_mode == "nearest":  # (a a a a | a b c d | d d d d)
        return 0 if i < 0 else n - 1
    if fill_mode == "wrap":  # (a b c d | a b c d | a b c d)
        while i < 0:
            i += n
        while i >= n:
            i -= n
        return i
    # reflect: (d c b a | a b c d | d c b a), mirror about the outer edge of the last pixel
    while not 0 <= i < n:
        i = -1 - i if i < 0 else 2 * n - 1 - i
    return i


def reference_affine(img, source_xy, fill_mode, interpolation, fill_value=0.0):
    """Resample one (h, w, c) image: output pixel (row y, col x) reads the input at
    ``source_xy(x, y)``; float64, one pixel at a time."""
    img = np.asarray(img, dtype=np.float64)
    h, w, c = img.shape
    out = np.zeros((h, w, c))

    def pixel(yi, xi):
        a, b = _extend(yi, h, fill_mode), _extend(xi, w, fill_mode)
        return np.full(c, fill_value) if a is None or b is None else img[a, b]

    for y in range(h):
        for x in range(w):
            sx, sy = source_xy(x, y)
            if interpolation == "nearest":
                out[y, x] = pixel(math.floor(sy + 0.5), math.floor(sx + 0.5))
                continue
            x0, y0 = math.floor(sx), math.floor(sy)
            fx, fy = sx - x0, sy - y0
            out[y, x] = (
                (1 - fy) * (1 - fx) * pixel(y0, x0)
                + (1 - fy) * fx * pixel(y0, x0 + 1)
                + fy * (1 - fx) * pixel(y0 + 1, x0)
                + fy * fx * pixel(y0 + 1, x0 + 1)
            )
    return out


def rotation_source(angle, h, w):
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    return lambda x, y: (
        cx + cos * (x - cx) - sin * (y - cy),
        cy + sin * (x - cx) + cos * (y - cy),
    )


def zoom_source(zx, zy, h, w):
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return lambda x, y: (cx + zx * (x - cx), cy + zy * (y - cy))


def images(rng, n=4, h=9, w=11, c=3):
    return (rng.random((n, h, w, c)) * 255).astype(np.float32)


# ----------------------------------------------------------------------------------- RandomFlip
@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_is_exact_per_image(mode, rng):
    x = images(rng, n=48)
    y = layers.RandomFlip(mode, seed=3)(x, training=True)
    assert y.shape == x.shape and y.dtype == np.float32
    axes = {"horizontal": (1,), "vertical": (0,), "horizontal_and_vertical": (0, 1)}[mode]
    flipped = 0
    for xi, yi in zip(x, y):
        if np.array_equal(yi, xi):
            continue
        np.testing.assert_array_equal(yi, np.flip(xi, axis=axes))
        flipped += 1
    assert 10 < flipped < 38  # about half of the images, as Keras (probability 1/2)


def test_flip_default_mode_and_unbatched(rng):
    layer = layers.RandomFlip(seed=0)
    assert layer.mode == "horizontal_and_vertical"
    img = images(rng, n=1)[0]
    outs = [layer(img, training=True) for _ in range(12)]
    assert all(o.shape == img.shape for o in outs)
    assert any(np.array_equal(o, img) for o in outs)
    assert any(np.array_equal(o, img[::-1, ::-1]) for o in outs)


# ------------------------------------------------------------------------------- RandomRotation
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("turns", [0.07, -0.19, 0.41])
def test_rotation_matches_reference(fill_mode, interpolation, turns, rng):
    x = images(rng, n=2, h=9, w=12)
    layer = layers.RandomRotation(
        (turns, turns), fill_mode=fill_mode, interpolation=interpolation, fill_value=17.0
    )
    y = layer(x, training=True)
    assert y.shape == x.shape and y.dtype == np.float32
    source = rotation_source(turns * 2 * math.pi, 9, 12)
    for xi, yi in zip(x, y):
        ref = reference_affine(xi, source, fill_mode, interpolation, fill_value=17.0)
        np.testing.assert_allclose(yi, ref, rtol=0, atol=2e-3)


@pytest.mark.parametrize("turns, k", [(0.25, 1), (-0.25, -1), (0.5, 2)])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_right_angle_rotation_is_rot90(turns, k, fill_mode, rng):
    x = images(rng, n=3, h=10, w=10, c=2)
    y = layers.RandomRotation((turns, turns), fill_mode=fill_mode)(x, training=True)
    # positive factors rotate counter-clockwise, as np.rot90 with k > 0
    np.testing.assert_allclose(y, np.rot90(x, k, axes=(1, 2)), rtol=0, atol=1e-3)


def test_rotation_angles_are_drawn_in_range(rng):
    # a single bright pixel right of the centre moves on a circle: recover each image's angle
    n, s = 200, 41
    x = np.zeros((n, s, s, 1), np.float32)
    x[:, 20, 35] = 1.0
    y = layers.RandomRotation(0.1, fill_mode="constant", seed=5)(x, training=True)
    angles = []
    for yi in y[..., 0]:
        r, c = np.unravel_index(np.argmax(yi), yi.shape)
        angles.append(math.atan2(-(r - 20), c - 20))  # counter-clockwise, rows point down
    angles = np.degrees(angles)
    assert angles.min() >= -36.0 - 3 and angles.max() <= 36.0 + 3
    assert angles.min() < -25 and angles.max() > 25  # spread over [-36, 36] degrees


# ----------------------------------------------------------------------------------- RandomZoom
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("hf, wf", [(-0.3, None), (0.4, None), (-0.2, 0.35), (0.5, -0.5)])
def test_zoom_matches_reference(fill_mode, hf, wf, rng):
    x = images(rng, n=2, h=8, w=13)
    layer = layers.RandomZoom(
        (hf, hf), None if wf is None else (wf, wf), fill_mode=fill_mode, fill_value=-4.0
    )
    y = layer(x, training=True)
    zy = 1 + hf
    zx = zy if wf is None else 1 + wf
    for xi, yi in zip(x, y):
        ref = reference_affine(xi, zoom_source(zx, zy, 8, 13), fill_mode, "bilinear", -4.0)
        np.testing.assert_allclose(yi, ref, rtol=0, atol=2e-3)


def test_zoom_in_magnifies_the_centre():
    # height_factor=(-0.5, -0.5): zoom in 2x, the central half of the image fills the output
    x = np.zeros((1, 21, 21, 1), np.float32)
    x[0, 8:13, 8:13] = 1.0  # a 5x5 square at the centre
    y = layers.RandomZoom((-0.5, -0.5), interpolation="nearest")(x, training=True)
    assert y[0, ..., 0].sum() == pytest.approx(4 * 25, abs=12)  # about twice as wide and tall
    zoomed_out = layers.RandomZoom((1.0, 1.0), fill_mode="constant")(x, training=True)
    assert zoomed_out[0, ..., 0].sum() < 0.5 * 25  # about half as wide and tall


def test_zoom_width_none_keeps_aspect_ratio(rng):
    x = images(rng, n=16, h=15, w=15, c=1)
    sym = x + np.swapaxes(x, 1, 2)  # symmetric images stay symmetric under equal zooms
    y = layers.RandomZoom(0.3, seed=1)(sym, training=True)
    np.testing.assert_allclose(y, np.swapaxes(y, 1, 2), rtol=0, atol=1e-3)
    y2 = layers.RandomZoom(0.3, 0.3, seed=1)(sym, training=True)
    assert np.abs(y2 - np.swapaxes(y2, 1, 2)).max() > 1.0  # independent width zoom


# ------------------------------------------------------------------------------ shared behaviour
def _augmenters():
    return [
        layers.RandomFlip("horizontal", seed=0),
        layers.RandomRotation(0.2, seed=1),
        layers.RandomZoom(0.3, seed=2),
        layers.RandomRotation(0.2, fill_mode="constant", interpolation="nearest", seed=3),
    ]


def test_identity_when_not_training(rng):
    x = images(rng)
    for layer in _augmenters():
        np.testing.assert_array_equal(layer(x, training=False), x)
        assert layer.backward(x) is x  # nothing recorded: the gradient passes through
        assert not np.array_equal(layer.forward(x, training=None), x)  # Keras' call default
        many = np.repeat(x, 8, axis=0)  # 32 images: a flip of none of them is a 2**-32 event
        assert not np.array_equal(layer(many), many)  # called directly, as the chapter's figures


def test_each_image_gets_its_own_transform(rng):
    x = np.repeat(images(rng, n=1, h=16, w=16), 32, axis=0)
    for layer in _augmenters()[1:]:
        y = layer(x, training=True)
        flat = y.reshape(32, -1)
        distinct = {tuple(np.round(r[:40], 2)) for r in flat}
        assert len(distinct) > 25, type(layer).__name__


def test_seeded_layers_are_reproducible(rng):
    x = images(rng)
    for make in (
        lambda s: layers.RandomFlip(seed=s),
        lambda s: layers.RandomRotation(0.3, seed=s),
        lambda s: layers.RandomZoom(0.3, 0.2, seed=s),
    ):
        a, b, c = make(7), make(7), make(8)
        a1, a2 = a(x, training=True), a(x, training=True)
        np.testing.assert_array_equal(a1, b(x, training=True))
        np.testing.assert_array_equal(a2, b(x, training=True))
        assert not np.array_equal(a1, a2)  # a new transform every call
        assert not np.array_equal(a1, c(x, training=True))


def test_unseeded_layers_follow_set_random_seed(rng):
    x = images(rng, n=8)
    runs = []
    for _ in range(2):
        set_random_seed(1234)
        aug = keras.Sequential(
            [layers.RandomFlip(), layers.RandomRotation(0.25), layers.RandomZoom(0.25)]
        )
        runs.append(aug(x, training=True))
    np.testing.assert_array_equal(runs[0], runs[1])
    set_random_seed(4321)
    assert not np.array_equal(runs[0], aug(x, training=True))


def test_shapes_and_symbolic_use(rng):
    for shape in [(5, 7, 3, 1), (1, 4, 9, 3), (3, 1, 1, 2)]:
        x = (rng.random(shape) * 255).astype(np.float32)
        for layer in _augmenters():
            y = layer(x, training=True)
            assert y.shape == x.shape and y.dtype == np.float32
    inputs = keras.Input(shape=(12, 10, 3))
    t = layers.RandomZoom(0.2)(layers.RandomRotation(0.1)(layers.RandomFlip()(inputs)))
    assert t.shape == (None, 12, 10, 3)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_backward_is_the_transpose(fill_mode, interpolation, rng):
    # <A x, g> == <x, A^T g> for the sampling A of one training call
    x = images(rng, n=3, h=7, w=9).astype(np.float64)
    g = rng.standard_normal(x.shape)
    for layer in (
        layers.RandomRotation(0.3, fill_mode=fill_mode, interpolation=interpolation, seed=2),
        layers.RandomZoom(0.4, 0.3, fill_mode=fill_mode, interpolation=interpolation, seed=2),
        layers.RandomFlip(seed=2),
    ):
        y = layer(x.astype(np.float32), training=True)  # linear in x (fill_value is 0)
        dx = layer.backward(g.astype(np.float32))
        assert dx.shape == x.shape and dx.dtype == np.float32
        lhs, rhs = float(np.sum(y * g)), float(np.sum(x * dx))
        assert lhs == pytest.approx(rhs, rel=1e-4), type(layer).__name__
        assert layer.backward(g, need_dx=False) is None


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mode"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="fill_mode"):
        layers.RandomRotation(0.1, fill_mode="mirror-ish")
    with pytest.raises(ValueError, match="interpolation"):
        layers.RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="factor"):
        layers.RandomRotation((0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="factor"):
        layers.RandomRotation("0.1")
    with pytest.raises(ValueError, match="height_factor"):
        layers.RandomZoom(1.5)
    with pytest.raises(ValueError, match="width_factor"):
        layers.RandomZoom(0.1, width_factor=(-2, 0))
    with pytest.raises(ValueError, match="channels_last"):
        layers.RandomFlip(data_format="channels_first")
    with pytest.raises(ValueError, match="seed"):
        layers.RandomFlip(seed=-1)
    with pytest.raises(ValueError, match="ndim=2"):
        layers.RandomFlip()(keras.Input(shape=(5,)))
    assert layers.RandomRotation((0.2, -0.1)).lower == pytest.approx(-0.1)  # sorted, as Keras


def test_config_round_trip():
    for layer in [
        layers.RandomFlip("vertical", seed=3, name="flip"),
        layers.RandomRotation((-0.1, 0.2), fill_mode="constant", fill_value=3.0, seed=1),
        layers.RandomRotation(0.1, interpolation="nearest"),
        layers.RandomZoom(0.2),
        layers.RandomZoom((-0.3, 0.1), width_factor=0.25, fill_mode="wrap", seed=9),
    ]:
        cfg = layer.get_config()
        cfg2 = json.loads(json.dumps(cfg))
        clone = type(layer).from_config(cfg2)
        assert clone.get_config() == cfg
        if layer.seed is not None:
            x = np.arange(2 * 5 * 6 * 1, dtype=np.float32).reshape(2, 5, 6, 1)
            np.testing.assert_array_equal(clone(x, training=True), layer(x, training=True))


# --------------------------------------------------------------------------------- in a model
def _chapter_model(size=24):
    data_augmentation = keras.Sequential(
        [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)]
    )
    inputs = keras.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(4, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def test_model_with_augmentation_trains_and_round_trips(tmp_path, rng):
    set_random_seed(0)
    x = images(rng, n=32, h=24, w=24)
    y = (rng.random(32) < 0.5).astype(np.float32)
    model = _chapter_model()
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
    assert all(np.isfinite(v) for v in history.history["loss"])
    # inference skips augmentation and dropout: deterministic
    p = model.predict(x, verbose=0)
    np.testing.assert_array_equal(p, model.predict(x, verbose=0))
    path = tmp_path / "aug.keras"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), p)
    aug = loaded.layers[1]
    assert [type(la).__name__ for la in aug.layers] == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
    ]
    assert aug.layers[1].get_config()["factor"] == 0.1
    loaded.compile(loss="binary_crossentropy", optimizer="rmsprop")
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)


def test_sequential_model_and_fit_reproducible(rng):
    x = images(rng, n=16, h=12, w=12)
    y = (np.arange(16) % 2).astype(np.float32)
    weights = []
    for _ in range(2):
        set_random_seed(42)
        model = keras.Sequential(
            [
                layers.RandomFlip("horizontal", input_shape=(12, 12, 3)),
                layers.RandomRotation(0.1),
                layers.RandomZoom(0.2),
                layers.Rescaling(1.0 / 255),
                layers.Flatten(),
                layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(loss="binary_crossentropy", optimizer="rmsprop")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_augmentation_after_trainable_layer_gets_gradients(rng):
    # not the chapter's placement, but backward() is exact, so training still works
    inputs = keras.Input(shape=(10, 10, 2))
    x = layers.Conv2D(3, 3, padding="same")(inputs)
    x = layers.RandomRotation(0.1, seed=0)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", optimizer="sgd")
    before = model.layers[1].get_weights()[0].copy()
    model.fit(images(rng, n=8, h=10, w=10, c=2) / 255, np.ones(8), epochs=1, verbose=0)
    assert not np.array_equal(before, model.layers[1].get_weights()[0])
