"""Files both ways between fastconv and real Keras 3 (run in its own venv): the lecture models'
predictions agree to 1e-4 and training resumes with the saved optimizer state (the next update
equals the other library's)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
from fastconv.applications import build_cats_vs_dogs_model, build_mnist_model

SHAPES = {"mnist": ((28, 28, 1), 10), "cats": ((180, 180, 3), 2)}


def _data(tmp_path, name, n=4):
    rng = np.random.default_rng(1)
    shape, classes = SHAPES[name]
    scale = 1.0 if name == "mnist" else 255.0
    d = {}
    for key in ("x", "x1", "x2"):
        d[key] = (rng.random((n,) + shape) * scale).astype(np.float32)
    for key in ("y1", "y2"):
        y = rng.integers(0, classes, n)
        d[key] = y if name == "mnist" else y.reshape(-1, 1).astype(np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, **d)
    return d, path


def _weights(npz):
    return [npz[f"w{i}"] for i in range(len([k for k in npz.files if k.startswith("w")]))]


def _same_update(before, ours, theirs):
    """The update each library made from the same weights and optimizer state agrees: within
    3% in norm per weight array (a format error, such as lost or misplaced
    optimizer state, makes it ~100%) (RMSprop divides by sqrt(v), so gradient elements summed with
    heavy cancellation keep float32's noise), and no weight further apart than lr/2."""
    assert len(before) == len(ours) == len(theirs)
    for w0, a, b in zip(before, ours, theirs):
        da, db = a - w0, b - w0
        assert np.linalg.norm(db) > 0
        assert np.linalg.norm(da - db) <= 3e-2 * np.linalg.norm(db)
        np.testing.assert_allclose(a, b, atol=5e-4)


@pytest.mark.parametrize("name", ["mnist", "cats"])
def test_keras_saved_model_loads_and_resumes(tmp_path, run_keras, name):
    d, data = _data(tmp_path, name)
    run_keras("save", name, data, tmp_path)
    expect = np.load(tmp_path / "keras_expect.npz")
    model = fastconv.models.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), expect["pred"], atol=1e-4)
    assert model.optimizer.iterations == 1
    before = model.get_weights()
    model.train_on_batch(d["x2"], d["y2"])
    assert model.optimizer.iterations == int(expect["iterations"])
    _same_update(before, model.get_weights(), _weights(expect))
    # the weights file alone, into a fresh model of the same graph
    fresh = build_mnist_model() if name == "mnist" else build_cats_vs_dogs_model()
    fresh.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_allclose(fresh.predict(d["x"], verbose=0), expect["pred"], atol=1e-4)


@pytest.mark.parametrize("name", ["mnist", "cats"])
def test_fastconv_saved_model_loads_in_keras_and_resumes(tmp_path, run_keras, name):
    d, data = _data(tmp_path, name)
    fastconv.utils.set_random_seed(0)
    model = build_mnist_model() if name == "mnist" else build_cats_vs_dogs_model()
    model.train_on_batch(d["x1"], d["y1"])
    model.save(tmp_path / "ours.keras")
    run_keras("load", tmp_path / "ours.keras", data, tmp_path / "keras_after.npz")
    theirs = np.load(tmp_path / "keras_after.npz")
    np.testing.assert_allclose(theirs["pred"], model.predict(d["x"], verbose=0), atol=1e-4)
    assert int(theirs["iterations"]) == 1
    before = model.get_weights()
    model.train_on_batch(d["x2"], d["y2"])
    _same_update(before, model.get_weights(), _weights(theirs))
