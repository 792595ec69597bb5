"""Saving and loading: exact round trips, atomic writes, and corrupt / hostile files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile

import numpy as np
import pytest
from fastconv import Input, layers, losses, metrics, optimizers
from fastconv.applications import mnist_convnet
from fastconv.layers.base import serialize_layer
from fastconv.models import Model, Sequential, load_model, saving


def save_v1(model, path):
    """A file in fastconv's older format (zip of JSON and .npy), which must still load: the
    hostile-file tests below rewrite such files."""
    meta = {
        "format": saving.FORMAT,
        "format_version": saving.FORMAT_VERSION,
        "model": serialize_layer(model),
        "compile_config": model._compile_config,
        "weights": saving._weights_manifest(model),
    }
    saving._write_archive(path, meta, model.weights, True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(42)
    tmp_path = tmp_path_factory.mktemp("saved")
    model = mnist_convnet()
    model.compile(
        optimizers.RMSprop(learning_rate=0.002), "sparse_categorical_crossentropy", ["accuracy"]
    )
    x = rng.random((8, 28, 28, 1)).astype(np.float32)
    model.fit(x, rng.integers(0, 10, 8), epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    save_v1(model, path)
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
        save_v1(model, path)
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
    a, b = mnist_convnet(), mnist_convnet()
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


def _layer_config(cfg, index):
    return cfg["model"]["config"]["layers"][index]["config"]


@dataclasses.dataclass(frozen=True)
class Hostile:
    """An edit that makes a saved file hostile or broken, and the words of the refusal.

    `edit` changes the parsed config.json of the lecture's MNIST model in place (layers: 0 input,
    1 conv, 2 pool, 3 conv, 4 pool, 5 conv, 6 flatten, 7 dense)."""

    id: str
    edit: object
    match: str


HOSTILE_CONFIGS = [
    Hostile(
        "layer-os.system",
        lambda c: _set_layer(c, 1, "class_name", "os.system"),
        "unknown layer class",
    ),
    Hostile(
        "layer-lambda", lambda c: _set_layer(c, 1, "class_name", "Lambda"), "unknown layer class"
    ),
    Hostile(
        "layer-module-qualified",
        lambda c: c["model"]["config"]["layers"].__setitem__(
            1, {"class_name": "builtins.eval", "config": {}, "module": "builtins"}
        ),
        "unknown layer class",
    ),
    Hostile(
        "model-builtins.eval",
        lambda c: c["model"].update(class_name="builtins.eval"),
        "unknown model class",
    ),
    Hostile("filters-mismatch", lambda c: _layer_config(c, 1).update(filters=33), "shape"),
    Hostile("unknown-key", lambda c: _layer_config(c, 1).update(evil="x"), "invalid conf"),
    Hostile(
        "dunder-key",
        lambda c: _layer_config(c, 1).update({"__class__": "os.system"}),
        "invalid conf",
    ),
    Hostile("filters-string", lambda c: _layer_config(c, 1).update(filters="32"), "filters"),
    Hostile(
        "units-huge", lambda c: _layer_config(c, 7).update(units=10**12), "larger than the weights"
    ),
    Hostile(
        "initializer-os.system",
        lambda c: _layer_config(c, 7).update(
            kernel_initializer={"class_name": "os.system", "config": {}}
        ),
        "initializer identifier",
    ),
    Hostile(
        "weight-path", lambda c: c["weights"][0].update(path="../../etc/passwd"), "malformed weight"
    ),
    Hostile("weight-shape", lambda c: c["weights"][0].update(shape=[3, 3, 1, 31]), "shape"),
    Hostile("weight-missing", lambda c: c["weights"].pop(), "weight"),
    Hostile("format-pickle", lambda c: c.update(format="pickle"), "does not describe"),
    Hostile(
        "optimizer-unknown",
        lambda c: c.update(compile_config={"optimizer": "nope", "loss": None}),
        "compile",
    ),
    Hostile(
        "optimizer-os.system",
        lambda c: c.update(
            compile_config={
                "optimizer": {"class_name": "os.system", "config": {}},
                "loss": "mse",
                "metrics": [],
            }
        ),
        "optimizer identifier",
    ),
    Hostile(
        "metric-os.system",
        lambda c: c.update(
            compile_config={
                "optimizer": "adam",
                "loss": "mse",
                "metrics": [{"class_name": "os.system", "config": {}}],
            }
        ),
        "metric identifier",
    ),
]


@pytest.mark.parametrize("case", HOSTILE_CONFIGS, ids=[c.id for c in HOSTILE_CONFIGS])
def test_hostile_configs_raise(saved, tmp_path, case):
    _, path, _ = saved
    bad = _rewrite(path, tmp_path / "bad.keras", config=case.edit)
    with pytest.raises(ValueError, match=case.match):
        load_model(bad)


HOSTILE_WEIGHTS = [
    Hostile(
        "pickled-object-array",
        _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "float32",
    ),
    Hostile("float64", _npy(np.zeros((3, 3, 1, 32), np.float64)), "float32"),
    Hostile("wrong-shape", _npy(np.zeros((3, 3, 1, 31), np.float32)), "shape"),
    Hostile("truncated", _npy(np.zeros((3, 3, 1, 32), np.float32))[:-8], "truncated"),
    Hostile("bad-header", b"\x93NUMPY\x01\x00" + b"v" * 40, "npy"),
    Hostile("not-npy", b"not an array", "npy"),
]


@pytest.mark.parametrize("case", HOSTILE_WEIGHTS, ids=[c.id for c in HOSTILE_WEIGHTS])
def test_hostile_weight_entries_raise(saved, tmp_path, case):
    """`edit` is here the bytes written in place of the first weight entry."""
    _, path, _ = saved
    bad = _rewrite(path, tmp_path / "bad.keras", replace={"weights/0.npy": case.edit})
    with pytest.raises(ValueError, match=case.match):
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


def test_long_sequential_file_loads_and_over_the_cap_is_refused(tmp_path, rng):
    """990 layers (just under the loader's cap of 1,000) load and predict as the original; past
    the cap, the file is refused before any layer is built."""
    model = Sequential([Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    path = tmp_path / "short.keras"
    save_v1(model, path)

    def flattens(prefix, n):  # identity layers after the first Flatten
        return [{"class_name": "Flatten", "config": {"name": f"{prefix}_{i}"}} for i in range(n)]

    added = []

    def lengthen(cfg, n=990):
        chain = cfg["model"]["config"]["layers"]
        added.append(n - len(chain))
        chain[2:2] = flattens("extra", added[-1])

    loaded = load_model(_rewrite(path, tmp_path / "long.keras", config=lengthen))
    assert len(loaded.layers) == len(model.layers) + added[0]
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="at most 1000 layers"):
        load_model(_rewrite(path, tmp_path / "longer.keras", config=lambda c: lengthen(c, 1010)))


# --------------------------------------------------------------------------- compile settings
def _small_model():
    return Sequential([Input((4,)), layers.Dense(3, activation="softmax")])


def test_save_load_with_loss_and_optimizer_objects(tmp_path):
    model = _small_model()
    model.compile(
        optimizer=optimizers.RMSprop(learning_rate=0.01),
        loss=losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert type(loaded.optimizer).__name__ == "RMSprop"


def test_save_load_with_metric_object(tmp_path):
    model = _small_model()
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=[metrics.SparseCategoricalAccuracy()]
    )
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.metrics_names == ["loss", "sparse_categorical_accuracy"]
