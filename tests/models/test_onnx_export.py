"""model.export(path, format="onnx"): onnxruntime computes what predict does, to 1e-5, for both
lecture models and for every layer fastconv implements ('same' padding, strides, dilation,
average pooling, the ReLU variants; training-only layers dropped, nested models inlined)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fastconv import Input, Model, Sequential, layers
from fastconv.applications import cats_vs_dogs_convnet, mnist_convnet
from fastconv.applications.vgg16 import VGG16
from fastconv.utils import set_random_seed

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (fastconv[onnx])")
ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)"
)

TOLERANCE = 1e-5


def _with_random_biases(model, rng):
    """Non-zero biases, so that the exported biases are checked too."""
    weights = [
        w if w.ndim > 1 else rng.normal(0, 0.1, w.shape).astype(np.float32)
        for w in model.get_weights()
    ]
    model.set_weights(weights)
    return model


def _onnx_predict(model, x, tmp_path):
    path = tmp_path / f"{model.name}.onnx"
    model.export(path, format="onnx")
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _check(model, x, tmp_path):
    want = model.predict(x, verbose=0)
    got = _onnx_predict(model, x, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE)
    return got


def test_mnist_convnet(tmp_path):
    set_random_seed(0)
    rng = np.random.default_rng(0)
    model = _with_random_biases(mnist_convnet(), rng)
    x = rng.random((5, 28, 28, 1), dtype=np.float32)
    got = _check(model, x, tmp_path)
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)  # the softmax is there


@pytest.mark.parametrize("augment", [False, True])
def test_cats_vs_dogs_convnet(tmp_path, augment):
    set_random_seed(1)
    rng = np.random.default_rng(1)
    model = _with_random_biases(cats_vs_dogs_convnet(augment=augment), rng)
    x = (rng.random((2, 180, 180, 3)) * 255).astype(np.float32)
    _check(model, x, tmp_path)
    if augment:  # the augmentation and the Dropout are training-only: none is exported
        ops = {n.op_type for n in onnx.load(str(tmp_path / f"{model.name}.onnx")).graph.node}
        assert not ops & {"Dropout", "RandomUniform", "Resize", "GridSample"}


def every_layer_model():
    inputs = Input(shape=(10, 9, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.RandomFlip("horizontal")(x)
    x = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)  # odd: pad after
    x = layers.Conv2D(5, (3, 2), padding="same", dilation_rate=2)(x)
    x = layers.ReLU(max_value=0.5, negative_slope=0.1, threshold=-0.05)(x)
    x = layers.AveragePooling2D(pool_size=2, padding="same")(x)  # only cells inside the image
    x = layers.Conv2D(4, 1, activation="sigmoid")(x)
    x = layers.MaxPooling2D(pool_size=3, strides=1, padding="same")(x)
    x = layers.MaxPooling2D(pool_size=2, strides=1)(x)
    x = layers.AveragePooling2D(pool_size=2, strides=1)(x)
    x = layers.Dense(7, activation="relu")(x)  # on the last axis of a 4-D tensor
    x = layers.Activation("softmax")(x)  # over the channels
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.ReLU()(x)
    x = layers.Dense(3)(x)
    outputs = layers.Softmax()(x)
    return Model(inputs, outputs)


def test_every_layer(tmp_path):
    set_random_seed(2)
    rng = np.random.default_rng(2)
    model = _with_random_biases(every_layer_model(), rng)
    x = (rng.random((4, 10, 9, 3)) * 255).astype(np.float32)
    _check(model, x, tmp_path)


def test_a_four_dimensional_output_comes_back_in_nhwc(tmp_path):
    set_random_seed(3)
    rng = np.random.default_rng(3)
    model = Sequential(
        [Input((8, 8, 2)), layers.Conv2D(3, 3, padding="same"), layers.MaxPooling2D()]
    )
    _check(_with_random_biases(model, rng), rng.random((2, 8, 8, 2), dtype=np.float32), tmp_path)


def test_any_batch_size(tmp_path):
    set_random_seed(4)
    model = mnist_convnet()
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = np.random.default_rng(n).random((n, 28, 28, 1), dtype=np.float32)
        np.testing.assert_allclose(
            session.run(None, {"input": x})[0], model.predict(x, verbose=0), atol=TOLERANCE
        )


def test_other_formats_and_unknown_layers_are_refused(tmp_path):
    model = mnist_convnet()
    with pytest.raises(ValueError, match="format='onnx' only"):
        model.export(tmp_path / "m", format="tf_saved_model")

    class Custom(layers.Layer):
        def forward(self, x, training=False):
            return x

    inputs = Input((4, 4, 1))
    odd = Model(inputs, Custom()(inputs))
    with pytest.raises(ValueError, match="Custom.*not supported"):
        odd.export(tmp_path / "odd.onnx", format="onnx")
    assert not (tmp_path / "odd.onnx").exists()


def test_without_the_onnx_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"fastconv\[onnx\]"):
        mnist_convnet().export(tmp_path / "m.onnx", format="onnx")


def test_vgg16_convolutional_base(tmp_path):
    """VGG16's graph (13 'same' convolutions, 5 poolings; random weights: the pretrained file is
    a download) at a small input size."""
    set_random_seed(5)
    rng = np.random.default_rng(5)
    model = VGG16(weights=None, include_top=False, input_shape=(64, 64, 3), pooling="max")
    model = _with_random_biases(model, rng)
    _check(model, (rng.random((2, 64, 64, 3)) * 255 - 120).astype(np.float32), tmp_path)
