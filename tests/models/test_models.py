"""Models: functional graphs, Sequential, summary, weights, prediction, input validation."""

from __future__ import annotations

import numpy as np
import pytest
from fastconv import Input, layers
from fastconv.applications import cats_vs_dogs_convnet, mnist_convnet
from fastconv.models import Model, Sequential


def test_lecture_model_summary(capsys):
    model = mnist_convnet()
    assert model.count_params() == 104_202
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 104,202" in out
    assert "Trainable params: 104,202" in out
    assert "Non-trainable params: 0" in out
    assert "(None, 3, 3, 128)" in out and "(None, 1152)" in out
    assert "Conv2D" in out and "MaxPooling2D" in out and "InputLayer" in out
    lines = []
    model.summary(print_fn=lines.append)
    assert "104,202" in "\n".join(lines)


def test_cats_vs_dogs_model_param_count():
    model = cats_vs_dogs_convnet()
    assert model.count_params() == 991_041
    assert model.output_shape == (None, 1)
    assert model.layers[-2].output_shape == (None, 12544)


def test_lecture_listing_with_public_imports():
    """The lecture's code with only its imports changed (needs the top-level re-export)."""
    import fastconv as keras
    from fastconv import layers as L

    inputs = keras.Input(shape=(28, 28, 1))
    x = L.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = L.MaxPooling2D(pool_size=2)(x)
    x = L.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = L.MaxPooling2D(pool_size=2)(x)
    x = L.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = L.Flatten()(x)
    outputs = L.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    assert model.count_params() == 104_202
    assert keras.models.load_model is not None and keras.Sequential is Sequential


def test_sequential_equivalent_and_weights_order(rng):
    seq = Sequential(
        [
            Input(shape=(8, 8, 2)),
            layers.Conv2D(3, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
        ]
    )
    seq.add(layers.Dense(4, activation="softmax"))
    assert [type(x).__name__ for x in seq.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert [w.shape for w in seq.get_weights()] == [(3, 3, 2, 3), (3,), (27, 4), (4,)]
    inputs = Input(shape=(8, 8, 2))
    x = layers.Conv2D(3, 3, activation="relu")(inputs)
    x = layers.Flatten()(layers.MaxPooling2D()(x))
    func = Model(inputs, layers.Dense(4, activation="softmax")(x))
    func.set_weights(seq.get_weights())
    xs = rng.standard_normal((5, 8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(func.predict(xs, verbose=0), seq.predict(xs, verbose=0))
    with pytest.raises(ValueError, match="expecting 4 weights"):
        func.set_weights(seq.get_weights()[:3])
    with pytest.raises(ValueError, match="shape"):
        func.set_weights([w.T for w in seq.get_weights()])


def test_sequential_deferred_build_and_input_shape_kwarg(rng):
    seq = Sequential([layers.Flatten(), layers.Dense(3)])
    assert not seq.built or not seq._graph_layers
    y = seq.predict(rng.standard_normal((4, 2, 5)), verbose=0)
    assert y.shape == (4, 3) and seq.count_params() == 33
    seq2 = Sequential([layers.Dense(2, input_shape=(7,))])
    assert seq2.output_shape == (None, 2)
    assert seq2.pop().name and seq2.layers == []


def test_sequential_shape_error_on_add():
    seq = Sequential([Input(shape=(10,))])
    with pytest.raises(ValueError, match="expected ndim=4"):
        seq.add(layers.Conv2D(2, 3))
    assert seq.layers == []  # the failed layer was not kept
    with pytest.raises(ValueError, match="Only instances of"):
        seq.add("dense")


def test_graph_errors():
    a, b = Input(shape=(3,)), Input(shape=(3,))
    out = layers.Dense(2)(b)
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(a, out)
    inp = Input(shape=(3,))
    x = layers.Dense(2, name="same")(inp)
    with pytest.raises(ValueError, match="unique"):
        Model(inp, layers.Dense(2, name="same")(x))
    shared = layers.Dense(3)
    shared(inp)
    with pytest.raises(ValueError, match="already been called"):
        shared(Input(shape=(3,)))


def test_nested_sequential_as_layer(rng):
    aug = Sequential([layers.Rescaling(2.0), layers.Activation("relu")])
    inputs = Input(shape=(6, 6, 1))
    x = aug(inputs)
    x = layers.Conv2D(2, 3)(x)
    model = Model(inputs, layers.Dense(1)(layers.Flatten()(x)))
    assert model.count_params() == 2 * 9 + 2 + 32 + 1
    xs = rng.standard_normal((3, 6, 6, 1)).astype(np.float32)
    conv = model.layers[2]
    manual = model.layers[-1](model.layers[-2](conv(np.maximum(2 * xs, 0))))
    np.testing.assert_allclose(model.predict(xs, verbose=0), manual, rtol=1e-6)


def test_predict_validation(rng):
    model = mnist_convnet()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 28, 28, 1\)"):
        model.predict(rng.random((2, 28, 28)), verbose=0)
    with pytest.raises(ValueError, match="single sample"):
        model.predict(rng.random((28, 28, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"expected shape"):
        model.predict(rng.random((2, 32, 32, 1)), verbose=0)
    with pytest.raises(ValueError, match="numeric"):
        model.predict(np.array([["a"]]), verbose=0)
    out = model.predict(rng.random((70, 28, 28, 1)), batch_size=32, verbose=0)
    assert out.shape == (70, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.predict_on_batch(np.zeros((2, 28, 28, 1))).shape, (2, 10))
    np.testing.assert_allclose(
        model(np.zeros((2, 28, 28, 1))), model.predict(np.zeros((2, 28, 28, 1)), verbose=0)
    )


def test_predict_accepts_batches_iterable(rng):
    model = mnist_convnet()
    xs = rng.random((10, 28, 28, 1)).astype(np.float32)
    want = model.predict(xs, verbose=0)
    got = model.predict(((xs[i : i + 4], None) for i in range(0, 10, 4)), verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    got2 = model.predict([xs[:3], xs[3:]].__iter__(), verbose=0)
    np.testing.assert_allclose(got2, want, rtol=1e-6, atol=1e-7)
