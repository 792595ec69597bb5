"""Acceptance checks written independently of the other tests: shapes, data and code paths they do
not cover (large channel counts, strides larger than the window, huge dilations, byte-order and
layout variants of the inputs, save/load of compile settings given as objects, callbacks' Keras 3
semantics, hostile model files built from a real save).
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import fastconv as keras
import numpy as np
import pytest
from fastconv import callbacks, layers, ops

TOL = 1e-4


# ----------------------------------------------------------------------------------------------
# an independent float64 reference, written from the definitions


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _axis(n, k, s, d, padding):
    """(output size, pad before, pad after) along one axis, Keras' semantics."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        return ((n - eff) // s + 1 if n >= eff else 0), 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + eff - n, 0)
    return out, total // 2, total - total // 2


def _padded(x, k, s, d, padding):
    (sh, sw), (dh, dw) = _pair(s), _pair(d)
    n, h, w, c = x.shape
    oh, pt, pb = _axis(h, k[0], sh, dh, padding)
    ow, pl, pr = _axis(w, k[1], sw, dw, padding)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp[:, pt : pt + h, pl : pl + w] = x
    return xp, (oh, ow), (pt, pl)


def _taps(k, s, d, oh, ow):
    (sh, sw), (dh, dw) = _pair(s), _pair(d)
    for i in range(k[0]):
        for j in range(k[1]):
            yield (
                i,
                j,
                (
                    slice(None),
                    slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                    slice(j * dw, j * dw + (ow - 1) * sw + 1, sw),
                ),
            )


def ref_conv(x, kern, bias, s, padding, d):
    x, kern = x.astype(np.float64), kern.astype(np.float64)
    xp, (oh, ow), _ = _padded(x, kern.shape[:2], s, d, padding)
    y = np.zeros((x.shape[0], oh, ow, kern.shape[3]))
    for i, j, sl in _taps(kern.shape[:2], s, d, oh, ow):
        y += np.einsum("nhwc,co->nhwo", xp[sl], kern[i, j])
    return y if bias is None else y + bias


def ref_conv_grad(x, kern, dy, s, padding, d):
    x, kern, dy = x.astype(np.float64), kern.astype(np.float64), dy.astype(np.float64)
    xp, (oh, ow), (pt, pl) = _padded(x, kern.shape[:2], s, d, padding)
    dxp, dk = np.zeros_like(xp), np.zeros_like(kern)
    for i, j, sl in _taps(kern.shape[:2], s, d, oh, ow):
        dk[i, j] = np.einsum("nhwc,nhwo->co", xp[sl], dy)
        dxp[sl] += np.einsum("nhwo,co->nhwc", dy, kern[i, j])
    h, w = x.shape[1:3]
    return dxp[:, pt : pt + h, pl : pl + w], dk, dy.sum(axis=(0, 1, 2))


def ref_pool(x, p, s, padding, mode):
    """Pooling and its gradient for dy = ones-weighted by ``w`` (returns y and a grad function)."""
    x = x.astype(np.float64)
    (ph, pw), (sh, sw) = _pair(p), _pair(s if s is not None else p)
    n, h, w, c = x.shape
    oh, pt, _ = _axis(h, ph, sh, 1, padding)
    ow, pl, _ = _axis(w, pw, sw, 1, padding)
    y = np.zeros((n, oh, ow, c))
    cells = {}
    for a in range(oh):
        for b in range(ow):
            r0, c0 = a * sh - pt, b * sw - pl
            r1, c1, r0, c0 = min(r0 + ph, h), min(c0 + pw, w), max(r0, 0), max(c0, 0)
            win = x[:, r0:r1, c0:c1]
            y[:, a, b] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
            cells[a, b] = (r0, r1, c0, c1)

    def grad(dy):
        dy = dy.astype(np.float64)
        dx = np.zeros_like(x)
        for (a, b), (r0, r1, c0, c1) in cells.items():
            win = x[:, r0:r1, c0:c1]
            hh, ww = win.shape[1:3]
            if mode == "avg":
                dx[:, r0:r1, c0:c1] += dy[:, a : a + 1, b : b + 1] / (hh * ww)
                continue
            first = win.reshape(n, hh * ww, c).argmax(axis=1)  # first maximum, row-major
            ni, ci = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
            np.add.at(dx, (ni, r0 + first // ww, c0 + first % ww, ci), dy[:, a, b])
        return dx

    return y, grad


def rel_err(got, expected):
    expected = np.asarray(expected, np.float64)
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(got - expected)) / max(1.0, np.max(np.abs(expected))))


# ----------------------------------------------------------------------------------------------
# ops on shapes the other tests do not use

CONV_SHAPES = [
    # n, h, w, cin, cout, kernel, strides, padding, dilation
    (7, 1, 1, 3, 300, (1, 1), 1, "valid", 1),  # 1x1 images, many filters
    (1, 2, 3, 5, 300, (7, 7), 1, "same", 1),  # kernel much bigger than the image
    (7, 9, 11, 3, 5, (2, 2), (5, 4), "valid", 1),  # strides bigger than the kernel
    (2, 13, 13, 5, 7, (3, 3), (4, 5), "same", 1),
    (3, 17, 9, 6, 9, (3, 3), 2, "same", 2),  # dilation together with stride
    (2, 15, 15, 7, 11, (3, 2), (3, 2), "valid", (2, 3)),
    (2, 21, 19, 300, 5, (3, 3), 1, "valid", 1),  # 300 input channels
    (1, 11, 11, 129, 257, (2, 2), 1, "same", 1),
    (1, 4, 4, 2, 3, (9, 9), 3, "same", 1),
    (2, 40, 3, 3, 8, (1, 3), (7, 1), "same", 1),
    (1, 3, 40, 3, 8, (3, 1), (1, 7), "valid", 1),
]


@pytest.mark.parametrize("case", CONV_SHAPES, ids=[str(c) for c in CONV_SHAPES])
def test_conv2d_and_grads_on_unusual_shapes(isa, rng, case):
    n, h, w, cin, cout, k, s, padding, d = case
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kern = rng.standard_normal((*k, cin, cout)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    kw = dict(strides=s, padding=padding, dilation_rate=d)
    expected = ref_conv(x, kern, b, s, padding, d)
    assert rel_err(ops.conv2d(x, kern, b, **kw), expected) < TOL
    relu = ops.conv2d(x, kern, b, activation="relu", **kw)
    assert rel_err(relu, np.maximum(expected, 0)) < TOL
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    grads = ops.conv2d_grad(x, kern, dy, **kw)
    for got, exp in zip(grads, ref_conv_grad(x, kern, dy, s, padding, d)):
        assert rel_err(got, exp) < TOL


def test_three_to_five_to_three_hundred_channels(isa, rng):
    x = rng.standard_normal((7, 12, 10, 3)).astype(np.float32)
    k1 = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    k2 = rng.standard_normal((3, 3, 5, 300)).astype(np.float32)
    h1 = ops.conv2d(x, k1, padding="same", activation="relu")
    assert rel_err(h1, np.maximum(ref_conv(x, k1, None, 1, "same", 1), 0)) < TOL
    h2 = ops.conv2d(h1, k2, strides=2, padding="same")
    assert h2.shape == (7, 6, 5, 300)
    assert rel_err(h2, ref_conv(h1, k2, None, 2, "same", 1)) < TOL


POOL_SHAPES = [
    (7, 9, 8, 300, (3, 2), (2, 3), "same"),
    (1, 1, 1, 5, (3, 3), None, "same"),
    (7, 11, 6, 17, (2, 2), (5, 4), "valid"),
    (2, 5, 13, 33, (5, 1), (1, 6), "same"),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_SHAPES, ids=[str(c) for c in POOL_SHAPES])
def test_pools_on_unusual_shapes(isa, rng, case, mode):
    n, h, w, c, p, s, padding = case
    x = np.round(rng.standard_normal((n, h, w, c)) * 2).astype(np.float32)  # many ties
    fwd = getattr(ops, f"{mode}_pool2d")
    bwd = getattr(ops, f"{mode}_pool2d_grad")
    y_ref, grad_ref = ref_pool(x, p, s, padding, mode)
    assert rel_err(fwd(x, p, s, padding), y_ref) < TOL
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    assert rel_err(bwd(x, dy, p, s, padding), grad_ref(dy)) < TOL


@pytest.mark.parametrize("dilation", [2**20, 2**31, 2**40])
def test_huge_dilation_with_same_padding_uses_only_the_centre_tap(isa, rng, dilation):
    # 'same' with a huge dilation: pad_total = 2*d, top = d, so only the centre tap is inside
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    kern = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    y = ops.conv2d(x, kern, padding="same", dilation_rate=dilation)
    assert rel_err(y, np.einsum("nhwc,co->nhwo", x.astype(np.float64), kern[1, 1])) < TOL
    dx, dk, db = ops.conv2d_grad(x, kern, np.ones_like(y), padding="same", dilation_rate=dilation)
    assert np.all(np.isfinite(dx)) and np.all(dk[0] == 0) and np.all(dk[:, 0] == 0)


def test_inputs_in_other_byte_orders_and_layouts(isa, rng):
    x = rng.standard_normal((3, 9, 8, 5))
    kern = rng.standard_normal((3, 2, 5, 7))
    b = rng.standard_normal(7)
    expected = ref_conv(
        x.astype(np.float32), kern.astype(np.float32), b.astype(np.float32), 2, "same", 1
    )
    variants = [
        (x.astype(">f4"), kern.astype(">f8"), b.astype(">f4")),
        (np.asfortranarray(x), np.asfortranarray(kern), b),
        (np.repeat(x, 2, axis=3)[..., ::2], kern[::-1][::-1], b),
        (x.tolist(), kern.tolist(), b.tolist()),
    ]
    for xv, kv, bv in variants:
        y = ops.conv2d(xv, kv, bv, strides=2, padding="same")
        assert y.dtype == np.float32 and y.flags.c_contiguous
        assert rel_err(y, expected) < TOL


def test_layer_conv_matches_reference_with_keras_layout(rng):
    conv = layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", activation="relu")
    model = keras.Sequential([keras.Input((7, 6, 3)), conv])
    kern, bias = conv.get_weights()
    assert kern.shape == (3, 2, 3, 5) and bias.shape == (5,) and np.all(bias == 0)
    bias = rng.standard_normal(5).astype(np.float32)
    conv.set_weights([kern, bias])
    x = rng.standard_normal((3, 7, 6, 3)).astype(np.float32)
    expected = np.maximum(ref_conv(x, kern, bias, (2, 1), "same", 1), 0)
    assert rel_err(model.predict(x, verbose=0), expected) < TOL


# ----------------------------------------------------------------------------------------------
# saving compile settings given as objects


def _small_model():
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])


def test_save_load_with_loss_and_optimizer_objects(tmp_path):
    model = _small_model()
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert type(loaded.optimizer).__name__ == "RMSprop"


def test_save_load_with_metric_object(tmp_path):
    model = _small_model()
    model.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.metrics_names == ["loss", "sparse_categorical_accuracy"]


# ----------------------------------------------------------------------------------------------
# hostile files made from a real save


@pytest.fixture
def saved(tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)]
    )
    model.compile("adam", "mse")
    path = tmp_path / "good.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("config.json"))
        weights = {n: zf.read(n) for n in zf.namelist() if n.startswith("weights/")}
    return tmp_path, meta, weights


def _write(path, meta, weights):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(meta))
        for name, data in weights.items():
            zf.writestr(name, data)
    return path


def _edits():
    def layer(i, entry):
        return lambda m: m["model"]["config"]["layers"].__setitem__(i, entry)

    return {
        "Lambda layer": layer(1, {"class_name": "Lambda", "config": {"function": "print(1)"}}),
        "module-qualified class": layer(
            1, {"class_name": "builtins.eval", "config": {}, "module": "builtins"}
        ),
        "dunder config keys": lambda m: m["model"]["config"]["layers"][1]["config"].update(
            {"__class__": "os.system"}
        ),
        "initializer naming os.system": lambda m: m["model"]["config"]["layers"][3][
            "config"
        ].update({"kernel_initializer": {"class_name": "os.system", "config": {}}}),
        "optimizer naming os.system": lambda m: m.__setitem__(
            "compile_config",
            {"optimizer": {"class_name": "os.system", "config": {}}, "loss": "mse", "metrics": []},
        ),
        "unknown metric class": lambda m: m.__setitem__(
            "compile_config",
            {
                "optimizer": "adam",
                "loss": "mse",
                "metrics": [{"class_name": "os.system", "config": {}}],
            },
        ),
    }


@pytest.mark.parametrize("name", list(_edits()))
def test_hostile_configs_raise_value_error(saved, name):
    folder, meta, weights = saved
    meta = json.loads(json.dumps(meta))
    _edits()[name](meta)
    path = _write(folder / "bad.keras", meta, weights)
    with pytest.raises(ValueError, match="Cannot load|Could not interpret"):
        keras.models.load_model(path)


def test_pickled_object_array_as_weight_is_refused(saved):
    folder, meta, weights = saved
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = _write(folder / "bad.keras", meta, {**weights, "weights/0.npy": buf.getvalue()})
    with pytest.raises(ValueError, match="float32"):
        keras.models.load_model(path)


def test_long_sequential_file_loads_quickly(saved):
    folder, meta, weights = saved
    meta = json.loads(json.dumps(meta))
    layers_list = meta["model"]["config"]["layers"]
    for i in range(990 - len(layers_list)):  # just under the loader's cap of 1,000 layers
        layers_list.insert(2, {"class_name": "Flatten", "config": {"name": f"extra_flatten_{i}"}})
    path = _write(folder / "long.keras", meta, weights)
    start = time.perf_counter()
    keras.models.load_model(path)
    assert time.perf_counter() - start < 1.0
    # past the cap, the file is refused before any layer is built
    layers_list.extend(
        {"class_name": "Flatten", "config": {"name": f"over_{i}"}} for i in range(20)
    )
    with pytest.raises(ValueError, match="at most 1000 layers"):
        keras.models.load_model(_write(folder / "longer.keras", meta, weights))


# ----------------------------------------------------------------------------------------------
# training semantics


def _toy(rng, n):
    x = rng.standard_normal((n, 6, 6, 1)).astype(np.float32)
    return x, rng.integers(0, 3, n)


class _Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.val_loss, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.val_loss.append(logs["val_loss"])
        self.weights.append(self.model.get_weights())


def _toy_model(lr):
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path, rng):
    keras.utils.set_random_seed(1)
    (x, y), (vx, vy) = _toy(rng, 64), _toy(rng, 32)
    model, rec = _toy_model(0.05), _Recorder()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "best.keras", save_best_only=True)
    model.fit(
        x, y, epochs=5, batch_size=16, validation_data=(vx, vy), callbacks=[rec, ckpt], verbose=0
    )
    best = int(np.argmin(rec.val_loss))
    loaded = keras.models.load_model(tmp_path / "best.keras")
    for a, b in zip(loaded.get_weights(), rec.weights[best]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_best_weights_when_training_ends_without_stopping(rng):
    x, y = _toy(rng, 32)
    model = _toy_model(0.0)
    es = callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    es.set_model(model)
    es.on_train_begin()
    for epoch, val in enumerate([1.0, 0.5, 0.8]):  # best at epoch 1; patience never runs out
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        es.on_epoch_end(epoch, {"val_loss": val})
    es.on_train_end()
    assert not model.stop_training
    assert all(np.all(w == 1.0) for w in model.get_weights())


def test_validation_data_as_a_list(rng):
    x, y = _toy(rng, 16)
    model = _toy_model(0.01)
    hist = model.fit(x, y, validation_data=[x, y], verbose=0)
    assert "val_loss" in hist.history


def test_bad_training_inputs_are_clear_value_errors(rng):
    x, y = _toy(rng, 10)
    model = _toy_model(0.01)
    cases = [
        ((np.zeros((10, 6, 5, 1)), y), "incompatible"),
        ((x, np.full(10, 3)), "outside the valid range"),
        ((x, np.full(10, -1)), "outside the valid range"),
        ((x, np.full(10, 0.5)), "integer"),
        ((x, y[:9]), "cardinality"),
        ((np.full((10, 6, 6, 1), "a"), y), "numeric"),
    ]
    for (xb, yb), words in cases:
        with pytest.raises(ValueError, match=words):
            model.fit(xb, yb, verbose=0)
    with pytest.raises(ValueError, match="incompatible"):
        model.predict(x[:, :, :, 0], verbose=0)
