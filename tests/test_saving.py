"""Saving and loading: exact round trips, atomic writes, and corrupt / hostile files."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from fastconv import layers, optimizers
from fastconv._tensor import Input
from fastconv.models import Model, Sequential, load_model, saving
from lecture_models import lecture_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(42)
    tmp_path = tmp_path_factory.mktemp("saved")
    model = lecture_model()
    model.compile(
        optimizers.RMSprop(learning_rate=0.002), "sparse_categorical_crossentropy", ["accuracy"]
    )
    x = rng.random((8, 28, 28, 1)).astype(np.float32)
    model.fit(x, rng.integers(0, 10, 8), epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path, x


def test_round_trip_is_exact(saved, tmp_path):
    model, path, x = saved
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32
    assert isinstance(loaded.optimizer, optimizers.RMSprop)
    assert loaded.optimizer.learning_rate == pytest.approx(0.002)
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.count_params() == 104_202
    # the loaded model trains, and re-saving it gives the same predictions again
    loaded.save(tmp_path / "again.keras")
    np.testing.assert_array_equal(
        load_model(tmp_path / "again.keras").predict(x, verbose=0), loaded.predict(x, verbose=0)
    )
    loaded.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0)


def test_archive_layout_and_atomic_write(saved, tmp_path, monkeypatch):
    model, shared, x = saved
    path = tmp_path / "model.keras"
    path.write_bytes(shared.read_bytes())
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        cfg = json.loads(zf.read("config.json"))
    assert names == ["config.json"] + sorted(f"weights/{i}.npy" for i in range(8))
    assert cfg["model"]["class_name"] == "Functional"
    assert [e["class_name"] for e in cfg["model"]["config"]["layers"]][:2] == [
        "InputLayer",
        "Conv2D",
    ]
    assert cfg["compile_config"]["loss"]["class_name"] == "SparseCategoricalCrossentropy"
    before = path.read_bytes()

    def boom(arr):
        raise RuntimeError("disk full")

    monkeypatch.setattr(saving, "_npy_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # previous file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temp left
    with pytest.raises(ValueError, match=".keras"):
        model.save(tmp_path / "model.h5")


def test_sequential_and_nested_round_trip(tmp_path, rng):
    seq = Sequential(
        [
            Input(shape=(6, 6, 2)),
            layers.Rescaling(0.5),
            layers.Conv2D(3, 3, padding="same", strides=2),
            layers.AveragePooling2D(),
            layers.Flatten(),
            layers.Dropout(0.2),
            layers.Dense(2, activation="sigmoid"),
        ]
    )
    inputs = Input(shape=(6, 6, 2))
    nested = Model(inputs, layers.Dense(1)(Sequential([layers.Flatten(), layers.ReLU()])(inputs)))
    x = rng.standard_normal((4, 6, 6, 2)).astype(np.float32)
    for i, model in enumerate((seq, nested)):
        p = tmp_path / f"m{i}.keras"
        model.save(p)
        loaded = load_model(p)
        assert type(loaded) is type(model)
        assert loaded.compiled is False
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_save_and_load_weights(tmp_path, rng):
    a, b = lecture_model(), lecture_model()
    a.save_weights(tmp_path / "w.weights.npz")
    b.load_weights(tmp_path / "w.weights.npz")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    small = Sequential([Input(shape=(3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="weight"):
        small.load_weights(tmp_path / "w.weights.npz")


# --------------------------------------------------------------------------- hostile files
def _rewrite(src, dst, config=None, replace=None, extra=None, drop=()):
    """Copy the archive src to dst, editing config.json and entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if name == "config.json" and config is not None:
                cfg = json.loads(data)
                config(cfg)
                data = json.dumps(cfg).encode()
            if replace and name in replace:
                data = replace[name]
            zout.writestr(name, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_missing_garbage_and_truncated_files(saved, tmp_path):
    _, path, _ = saved
    with pytest.raises(OSError):
        load_model(tmp_path / "nope.keras")
    with pytest.raises(OSError):
        load_model(tmp_path)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(ValueError, match="not a zip"):
        load_model(garbage)
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 30, 100):
        t = tmp_path / f"trunc{cut}.keras"
        t.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            load_model(t)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.keras").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        load_model(tmp_path / "flip.keras")
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(ValueError, match="config.json"):
        load_model(empty)


def _set_layer(cfg, index, key, value):
    cfg["model"]["config"]["layers"][index][key] = value


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: _set_layer(c, 1, "class_name", "os.system"), "unknown layer class"),
        (lambda c: _set_layer(c, 1, "class_name", "Lambda"), "unknown layer class"),
        (lambda c: c["model"].update(class_name="builtins.eval"), "unknown model class"),
        (lambda c: c["model"]["config"]["layers"][1]["config"].update(filters=33), "shape"),
        (lambda c: c["model"]["config"]["layers"][1]["config"].update(evil="x"), "invalid conf"),
        (lambda c: c["model"]["config"]["layers"][1]["config"].update(filters="32"), "filters"),
        (
            lambda c: c["model"]["config"]["layers"][7]["config"].update(units=10**12),
            "larger than the weights",
        ),
        (lambda c: c["weights"][0].update(path="../../etc/passwd"), "malformed weight"),
        (lambda c: c["weights"][0].update(shape=[3, 3, 1, 31]), "shape"),
        (lambda c: c["weights"].pop(), "weight"),
        (lambda c: c.update(format="pickle"), "does not describe"),
        (lambda c: c.update(compile_config={"optimizer": "nope", "loss": None}), "compile"),
    ],
)
def test_hostile_configs_raise(saved, tmp_path, edit, match):
    _, path, _ = saved
    bad = _rewrite(path, tmp_path / "bad.keras", config=edit)
    with pytest.raises(ValueError, match=match):
        load_model(bad)


@pytest.mark.parametrize(
    "payload, match",
    [
        (_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "float32"),
        (_npy(np.zeros((3, 3, 1, 32), np.float64)), "float32"),
        (_npy(np.zeros((3, 3, 1, 31), np.float32)), "shape"),
        (_npy(np.zeros((3, 3, 1, 32), np.float32))[:-8], "truncated"),
        (b"\x93NUMPY\x01\x00" + b"v" * 40, "npy"),
        (b"not an array", "npy"),
    ],
)
def test_hostile_weight_entries_raise(saved, tmp_path, payload, match):
    _, path, _ = saved
    bad = _rewrite(path, tmp_path / "bad.keras", replace={"weights/0.npy": payload})
    with pytest.raises(ValueError, match=match):
        load_model(bad)


def test_huge_declared_array_and_zip_bomb(saved, tmp_path, monkeypatch):
    _, path, _ = saved
    # a header claiming a gigantic array must be refused before any allocation
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (3, 3, 1, 32)}
    )
    fake = header.getvalue().replace(b"(3, 3, 1, 32)", b"(3, 3, 1, 9999999999999)"[:13])
    bad = _rewrite(path, tmp_path / "hdr.keras", replace={"weights/0.npy": fake})
    with pytest.raises(ValueError):
        load_model(bad)
    # an over-large (highly compressible) config is refused by the size cap
    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", 10_000)
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * 1_000_000 + b"{}")
    assert bomb.stat().st_size < 10_000
    with pytest.raises(ValueError, match="too large"):
        load_model(bomb)
    # duplicate entry names
    with pytest.warns(UserWarning, match="Duplicate name"):
        dup = _rewrite(path, tmp_path / "dup.keras", extra={"weights/0.npy": _npy(np.zeros(1))})
    with pytest.raises(ValueError, match="duplicate"):
        load_model(dup)


def test_missing_weight_entry_and_bad_json(saved, tmp_path):
    _, path, _ = saved
    with pytest.raises(ValueError, match="missing"):
        load_model(_rewrite(path, tmp_path / "m.keras", drop=("weights/3.npy",)))
    with pytest.raises(ValueError, match="JSON"):
        load_model(_rewrite(path, tmp_path / "j.keras", replace={"config.json": b"{not json"}))
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValueError):
        load_model(_rewrite(path, tmp_path / "d.keras", replace={"config.json": deep}))
