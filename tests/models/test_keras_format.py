"""Keras 3's file format written and read here: layout, optimizer state, the legacy h5 layout,
and hostile h5 / zip files refused with clear errors (the real-Keras checks are in
tests/interop/)."""

from __future__ import annotations

import json
import time
import zipfile

import h5py
import numpy as np
import pytest
from fastconv import Input, layers
from fastconv.applications import mnist_convnet
from fastconv.models import Model, Sequential, load_model


@pytest.fixture
def trained(tmp_path):
    rng = np.random.default_rng(0)
    model = mnist_convnet()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    x = rng.random((8, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    model.train_on_batch(x, y)
    return model, x, y


def test_keras_layout(trained, tmp_path):
    model, _, _ = trained
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        cfg = json.loads(zf.read("config.json"))
        zf.extract("model.weights.h5", tmp_path)
    assert cfg["class_name"] == "Functional" and cfg["registered_name"] == "Functional"
    conv = cfg["config"]["layers"][1]
    assert conv["module"] == "keras.layers" and conv["class_name"] == "Conv2D"
    input_name = cfg["config"]["layers"][0]["name"]  # input_layer, _N after other tests' models
    assert input_name.startswith("input_layer")
    assert conv["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == [input_name, 0, 0]
    assert conv["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert cfg["compile_config"]["optimizer"]["class_name"] == "Adam"
    with h5py.File(tmp_path / "model.weights.h5") as f:
        assert f["layers/conv2d/vars/0"].shape == (3, 3, 1, 32)
        assert f["layers/conv2d_2/vars/0"].shape == (3, 3, 64, 128)
        assert f["optimizer/vars/0"][()] == 1  # iterations
        assert len(f["optimizer/vars"]) == 2 + 2 * len(model.trainable_weights)


def test_round_trip_resumes_training_exactly(trained, tmp_path):
    model, x, y = trained
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == 1
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_h5_both_layouts(trained, tmp_path):
    model, x, _ = trained
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = mnist_convnet()
    fresh.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    # Keras 2's layout (Keras' published ImageNet files): layer_names / weight_names, by order
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for layer in model.layers:
            g = f.create_group(layer.name)
            wn = [f"{layer.name}/{k}:0".encode() for k in ("kernel", "bias")][: len(layer.weights)]
            g.attrs["weight_names"] = wn
            for name, w in zip(wn, layer.weights):
                g.create_dataset(name.decode(), data=w)
    other = mnist_convnet()
    other.load_weights(tmp_path / "legacy.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_sequential_and_nested_models_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    inner = Sequential([layers.Conv2D(2, 3), layers.Flatten()])
    inputs = Input((6, 6, 1))
    model = Model(inputs, layers.Dense(2)(inner(layers.Rescaling(0.5)(inputs))))
    x = rng.random((3, 6, 6, 1)).astype(np.float32)
    model.save(tmp_path / "n.keras")
    loaded = load_model(tmp_path / "n.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --------------------------------------------------------------------------- hostile files
def _weights_file(model, tmp_path, edit):
    path = tmp_path / "h.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _external(f, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as o:
        o.create_dataset("k", data=np.zeros((3, 3, 1, 32), np.float32))
    del f["layers/conv2d/vars/0"]
    f["layers/conv2d/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "k")


def _soft(f, tmp_path):
    f.create_dataset("elsewhere", data=np.zeros((3, 3, 1, 32), np.float32))
    del f["layers/conv2d/vars/0"]
    f["layers/conv2d/vars/0"] = h5py.SoftLink("/elsewhere")


def _virtual(f, tmp_path):
    source = h5py.VirtualSource(str(tmp_path / "other.h5"), "k", shape=(3, 3, 1, 32))
    layout = h5py.VirtualLayout(shape=(3, 3, 1, 32), dtype=np.float32)
    layout[...] = source
    del f["layers/conv2d/vars/0"]
    f.create_virtual_dataset("layers/conv2d/vars/0", layout)


def _huge(f, tmp_path):
    del f["layers/conv2d/vars/0"]
    f.create_dataset("layers/conv2d/vars/0", shape=(1 << 20, 1 << 20), dtype=np.float32)


def _float64(f, tmp_path):
    del f["layers/conv2d/vars/0"]
    f.create_dataset("layers/conv2d/vars/0", data=np.zeros((3, 3, 1, 32)))


def _strings(f, tmp_path):
    del f["layers/conv2d/vars/0"]
    f.create_dataset("layers/conv2d/vars/0", data=np.array([b"x"] * 288).reshape(3, 3, 1, 32))


def _missing(f, tmp_path):
    del f["layers/dense/vars/1"]


def _external_storage(f, tmp_path):
    (tmp_path / "raw.bin").write_bytes(bytes(4 * 288))
    del f["layers/conv2d/vars/0"]
    f.create_dataset(
        "layers/conv2d/vars/0",
        (3, 3, 1, 32),
        np.float32,
        external=[(str(tmp_path / "raw.bin"), 0, 4 * 288)],
    )


HOSTILE = {
    "external-link": (_external, "ExternalLink"),
    "soft-link": (_soft, "SoftLink"),
    "virtual": (_virtual, "virtual"),
    "huge-shape": (_huge, "shape"),
    "float64": (_float64, "float32"),
    "strings": (_strings, "dtype"),
    "missing": (_missing, "weight arrays"),
    "external-storage": (_external_storage, "external"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_weight_files_are_refused(trained, tmp_path, case):
    model, x, _ = trained
    edit, message = HOSTILE[case]
    path = _weights_file(model, tmp_path, lambda f: edit(f, tmp_path))
    target = mnist_convnet()
    before = target.get_weights()
    start = time.process_time()
    with pytest.raises(ValueError, match=message):
        target.load_weights(path)
    assert time.process_time() - start < 5  # refused at once, not after reading anything big
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)  # a refused file leaves the model as it was


def test_truncated_and_foreign_files(trained, tmp_path):
    model, _, _ = trained
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "t.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Cannot load"):
        load_model(tmp_path / "t.keras")
    h5 = (tmp_path / "m.weights.h5").read_bytes()
    (tmp_path / "t.weights.h5").write_bytes(h5[: len(h5) // 2])
    with pytest.raises(ValueError, match="Cannot load"):
        mnist_convnet().load_weights(tmp_path / "t.weights.h5")
    (tmp_path / "junk.weights.h5").write_bytes(b"not an h5 file" * 100)
    with pytest.raises(ValueError, match="not a readable h5 file"):
        mnist_convnet().load_weights(tmp_path / "junk.weights.h5")


def _rewrite_config(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
            zout.writestr(info, data)
    return dst


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("class_name", "Lambda", "'Lambda'"),
        ("registered_name", "my_package>Evil", "my_package>Evil"),
        ("kernel_regularizer", {"class_name": "L2", "config": {"l2": 0.01}}, "kernel_regularizer"),
        ("dtype", {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}, "float32"),
    ],
)
def test_layers_we_cannot_compute_are_named(trained, tmp_path, field, value, message):
    model, _, _ = trained
    model.save(tmp_path / "m.keras")

    def edit(cfg):
        conv = cfg["config"]["layers"][1]
        if field in ("class_name", "registered_name"):
            conv[field] = value
        else:
            conv["config"][field] = value

    path = _rewrite_config(tmp_path / "m.keras", tmp_path / "e.keras", edit)
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_declared_sizes_over_the_cap_are_refused_before_building(trained, tmp_path):
    model, _, _ = trained
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="max_bytes"):
        load_model(tmp_path / "m.keras", max_bytes=1000)
