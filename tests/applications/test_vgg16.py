"""VGG16: Keras' graph and parameter counts, preprocess_input, Keras' predictions from a weight
file Keras wrote (needs the Keras venv), and the chapter's frozen-base workflow."""

from __future__ import annotations

import fastconv as keras
import numpy as np
import pytest
from fastconv.applications import vgg16


def test_parameter_counts_and_names():
    base = vgg16.VGG16(weights=None, include_top=False, input_shape=(180, 180, 3))
    assert base.count_params() == 14_714_688
    assert [layer.name for layer in base.layers[1:4]] == [
        "block1_conv1",
        "block1_conv2",
        "block1_pool",
    ]
    assert vgg16.VGG16(weights=None).count_params() == 138_357_544


def test_preprocess_input_on_arrays_and_tensors():
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32) * 255
    expect = x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(vgg16.preprocess_input(x), expect, rtol=1e-6)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, vgg16.preprocess_input(inputs))
    np.testing.assert_allclose(model.predict(x, verbose=0), expect, rtol=1e-6)


@pytest.mark.parametrize("top", ["notop", "top"])
def test_predictions_equal_keras_from_its_weight_file(tmp_path, run_keras, top):
    rng = np.random.default_rng(0)
    shape = (224, 224, 3) if top == "top" else (48, 48, 3)
    np.savez(tmp_path / "d.npz", x=(rng.random((2,) + shape) * 255).astype(np.float32))
    run_keras("vgg16", top, tmp_path, tmp_path / "d.npz")
    expect = np.load(tmp_path / f"vgg16_{top}_expect.npz")
    x = np.load(tmp_path / "d.npz")["x"]
    np.testing.assert_allclose(vgg16.preprocess_input(x), expect["pre"], atol=1e-4)
    model = vgg16.VGG16(
        weights=str(tmp_path / f"vgg16_{top}.weights.h5"),
        include_top=top == "top",
        input_shape=shape,
    )
    pred = model.predict(vgg16.preprocess_input(x), verbose=0)
    np.testing.assert_allclose(pred, expect["pred"], atol=1e-4, rtol=1e-4)


def test_frozen_base_feature_extraction_and_fine_tuning():
    """The chapter's listings on generated images: a frozen base stays bit-identical through
    fit; trainable-weight counts match Keras' at each step (26 -> 4 -> 10 with block5 open)."""
    rng = np.random.default_rng(1)
    conv_base = vgg16.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert len(conv_base.trainable_weights) == 26
    conv_base.trainable = False
    assert len(conv_base.trainable_weights) == 0
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = vgg16.preprocess_input(x)
    x = conv_base(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    assert len(model.trainable_weights) == 4
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    xs = (rng.random((8, 32, 32, 3)) * 255).astype(np.float32)
    ys = rng.integers(0, 2, (8, 1)).astype(np.float32)
    frozen = conv_base.get_weights()
    model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
    for a, b in zip(frozen, conv_base.get_weights()):
        np.testing.assert_array_equal(a, b)
    conv_base.trainable = True
    for layer in conv_base.layers[:-4]:
        layer.trainable = False
    assert len(model.trainable_weights) == 10
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.RMSprop(1e-5))
    model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
    after = conv_base.get_weights()
    for a, b in zip(frozen[:20], after[:20]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(frozen[-2], after[-2])
    features = conv_base.predict(vgg16.preprocess_input(xs), verbose=0)
    assert features.shape == (8, 1, 1, 512)
