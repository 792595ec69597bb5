"""Layers: configs, shapes, weights, names, connection errors, eager forward/backward."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import reference as ref
from fastconv import Input, layers
from fastconv.layers.base import clear_session
from fastconv.models import Sequential


def _all_layers():
    return [
        layers.Conv2D(4, 3),
        layers.Conv2D(
            8,
            (3, 2),
            strides=(2, 1),
            padding="same",
            activation="sigmoid",
            use_bias=False,
            kernel_initializer="he_normal",
            bias_initializer="ones",
        ),
        layers.Conv2D(2, 3, dilation_rate=2, activation="relu"),
        layers.MaxPooling2D(),
        layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
        layers.AveragePooling2D((2, 3), padding="same"),
        layers.Dense(5, activation="softmax"),
        layers.Dense(3, use_bias=False, kernel_initializer="zeros"),
        layers.Flatten(),
        layers.Activation("sigmoid"),
        layers.ReLU(),
        layers.ReLU(max_value=6.0, negative_slope=0.1),
        layers.Softmax(),
        layers.Dropout(0.25, seed=3),
        layers.Rescaling(1.0 / 255, offset=-0.5),
        layers.InputLayer(shape=(5, 6, 7)),
    ]


@pytest.mark.parametrize("index", range(len(_all_layers())))
def test_config_round_trip(index):
    layer = _all_layers()[index]
    cfg = layer.get_config()
    clone = type(layer).from_config(cfg)
    assert type(clone) is type(layer)
    assert clone.get_config() == cfg
    assert clone.name == layer.name


@dataclasses.dataclass(frozen=True)
class ShapeCase:
    """A layer, an input shape and the output shape it must give."""

    id: str
    make: object  # () -> layer
    in_shape: tuple
    out_shape: tuple


SHAPE_CASES = [
    ShapeCase("conv", lambda: layers.Conv2D(4, 3), (2, 9, 8, 3), (2, 7, 6, 4)),
    ShapeCase(
        "conv-strided-same",
        lambda: layers.Conv2D(4, 3, strides=2, padding="same"),
        (2, 9, 8, 3),
        (2, 5, 4, 4),
    ),
    ShapeCase(
        "conv-dilated",
        lambda: layers.Conv2D(2, (3, 2), dilation_rate=2),
        (1, 9, 8, 3),
        (1, 5, 6, 2),
    ),
    ShapeCase("max-pool", lambda: layers.MaxPooling2D(), (2, 9, 8, 3), (2, 4, 4, 3)),
    ShapeCase(
        "max-pool-same",
        lambda: layers.MaxPooling2D(3, strides=2, padding="same"),
        (2, 9, 8, 3),
        (2, 5, 4, 3),
    ),
    ShapeCase(
        "avg-pool-same",
        lambda: layers.AveragePooling2D(2, padding="same"),
        (2, 9, 7, 3),
        (2, 5, 4, 3),
    ),
    ShapeCase("dense", lambda: layers.Dense(5), (3, 7), (3, 5)),
    ShapeCase("dense-3d", lambda: layers.Dense(5), (3, 4, 7), (3, 4, 5)),
    ShapeCase("flatten", lambda: layers.Flatten(), (2, 3, 4, 5), (2, 60)),
    ShapeCase("softmax", lambda: layers.Softmax(), (2, 6), (2, 6)),
]


@pytest.mark.parametrize("case", SHAPE_CASES, ids=[c.id for c in SHAPE_CASES])
def test_compute_output_shape_matches_forward(case, rng):
    layer = case.make()
    sym = layer.compute_output_shape((None,) + case.in_shape[1:])
    assert sym == (None,) + case.out_shape[1:]
    y = layer(rng.standard_normal(case.in_shape).astype(np.float32))
    assert y.shape == case.out_shape
    assert y.dtype == np.float32


def test_conv_and_pool_layers_match_reference(rng):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    conv = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")
    y = conv(x)
    want = ref.conv2d(x, conv.kernel, conv.bias + 0.0, strides=2, padding="same")
    np.testing.assert_allclose(y, np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    pool = layers.AveragePooling2D(3, strides=2, padding="same")
    np.testing.assert_allclose(pool(x), ref.avg_pool2d(x, 3, 2, "same"), rtol=1e-5, atol=1e-6)


def test_weight_layouts_and_counts():
    conv = layers.Conv2D(32, 3)
    conv.build((None, 28, 28, 1))
    assert conv.kernel.shape == (3, 3, 1, 32) and conv.bias.shape == (32,)
    assert conv.count_params() == 320
    dense = layers.Dense(10)
    dense.build((None, 1152))
    assert [w.shape for w in dense.get_weights()] == [(1152, 10), (10,)]
    assert dense.count_params() == 11530
    nb = layers.Dense(3, use_bias=False)
    nb.build((None, 4))
    assert nb.count_params() == 12 and len(nb.weights) == 1
    with pytest.raises(ValueError, match="isn't built"):
        layers.Dense(3).count_params()


def test_glorot_uniform_and_zero_bias_defaults():
    conv = layers.Conv2D(64, 3)
    conv.build((None, 8, 8, 32))
    limit = np.sqrt(6.0 / (9 * 32 + 9 * 64))
    assert np.abs(conv.kernel).max() <= limit
    assert np.abs(conv.kernel).max() > 0.9 * limit
    assert abs(conv.kernel.std() - limit / np.sqrt(3)) < 0.05 * limit
    assert not conv.bias.any()


def test_set_weights_checks_shapes_and_copies():
    dense = layers.Dense(2)
    dense.build((None, 3))
    k = np.arange(6, dtype=np.float32).reshape(3, 2)
    dense.set_weights([k, np.ones(2)])
    k[0, 0] = 100
    assert dense.get_weights()[0][0, 0] == 0  # copied
    with pytest.raises(ValueError, match="shape"):
        dense.set_weights([np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(ValueError, match="expected 2 variables"):
        dense.set_weights([np.zeros((3, 2))])


def test_auto_names_are_unique_like_keras():
    clear_session()
    a, b, c = layers.Conv2D(1, 1), layers.Conv2D(1, 1), layers.MaxPooling2D()
    assert (a.name, b.name, c.name) == ("conv2d", "conv2d_1", "max_pooling2d")
    assert layers.ReLU().name == "re_lu"
    assert layers.Dense(1, name="head").name == "head"


def test_connection_shape_errors():
    flat = Input(shape=(784,))
    with pytest.raises(ValueError, match=r"expected ndim=4, found ndim=2"):
        layers.Conv2D(8, 3)(flat)
    img = Input(shape=(2, 2, 1))
    with pytest.raises(ValueError, match="negative or zero"):
        layers.Conv2D(8, 3)(img)
    with pytest.raises(ValueError, match="negative or zero"):
        layers.MaxPooling2D(3)(img)
    d = layers.Dense(4)
    d(Input(shape=(5,)))
    with pytest.raises(ValueError, match="axis -1 of input shape to have value 5"):
        d(np.zeros((2, 6), np.float32))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: layers.Conv2D(0, 3), "filters"),
        (lambda: layers.Conv2D(4, 3, padding="full"), "padding"),
        (lambda: layers.Conv2D(4, (3, 3, 3)), "kernel_size"),
        (lambda: layers.Dense(-1), "units"),
        (lambda: layers.Dense(3, activation="swish"), "activation"),
        (lambda: layers.Dropout(1.5), "rate"),
        (lambda: layers.Dense(3, kernel_initializer="nope"), "initializer"),
        (lambda: layers.Dense(3, bogus=1), "Unrecognized"),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_dropout_training_only_and_seeded(rng):
    x = np.ones((200, 50), np.float32)
    d = layers.Dropout(0.4, seed=7)
    np.testing.assert_array_equal(d(x), x)  # inference: identity
    y = d(x, training=True)
    kept = y != 0
    assert 0.5 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], 1 / 0.6, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(d.backward(dy), dy * (y / x))
    y2 = layers.Dropout(0.4, seed=7)(x, training=True)
    np.testing.assert_array_equal(y, y2)


def _fd_check(layer, x, rng, eps=1e-3, tol=2e-2):
    y = layer.forward(x, training=False)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    for idx in [tuple(rng.integers(0, s) for s in x.shape) for _ in range(6)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num = (
            np.sum(layer.forward(xp) * dy, dtype=np.float64)
            - np.sum(layer.forward(xm) * dy, dtype=np.float64)
        ) / (2 * eps)
        assert abs(num - dx[idx]) <= tol * max(1.0, abs(num)), (idx, num, dx[idx])


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Activation("sigmoid"),
        lambda: layers.Softmax(),
        lambda: layers.Activation("softmax"),
        lambda: layers.ReLU(max_value=0.5, negative_slope=0.2),
        lambda: layers.Rescaling(2.0, offset=1.0),
        lambda: layers.Dense(3, activation="sigmoid"),
        lambda: layers.Dense(4, activation="softmax"),
    ],
)
def test_layer_backward_matches_finite_differences(make, rng):
    layer = make()
    x = rng.standard_normal((3, 5)).astype(np.float32)
    layer(x)  # build
    _fd_check(layer, x, rng)


def test_nd_dense_backward_shapes(rng):
    d = layers.Dense(3)
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    y = d(x)
    dx = d.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert d.grads["kernel"].shape == (5, 3)
    np.testing.assert_allclose(d.grads["bias"], np.full(3, 8.0))


def test_conv_layer_in_a_model_matches_reference_with_keras_layout(rng):
    conv = layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", activation="relu")
    model = Sequential([Input((7, 6, 3)), conv])
    kern, bias = conv.get_weights()
    assert kern.shape == (3, 2, 3, 5) and bias.shape == (5,) and np.all(bias == 0)
    bias = rng.standard_normal(5).astype(np.float32)
    conv.set_weights([kern, bias])
    x = rng.standard_normal((3, 7, 6, 3)).astype(np.float32)
    expected = ref.conv2d(x, kern, bias, strides=(2, 1), padding="same", activation="relu")
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
