"""Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions, forced (set_conv_algorithm("winograd")).

It covers the forward pass, the input gradient and the weight gradient. Its accuracy is
measured against the float64 reference on every ISA, next to the direct path's
on the same data: the transforms add, subtract and halve, so its rounding differs from the direct
sum but must stay as small. Shapes it cannot take must give the direct path's bits.
"""

from __future__ import annotations

import os
import subprocess
import sys

import fastconv
import numpy as np
import pytest
import reference as ref
from fastconv import ops

# (batch, height, width, in_channels, filters, padding): tile edges (odd sizes, 2x2 tiles over
# the border), 'same' padding, channel counts off the vector width, the lecture's A.conv2 shape.
SHAPES = [
    (2, 13, 13, 32, 64, "valid"),
    (3, 16, 19, 17, 9, "same"),
    (1, 18, 16, 8, 40, "valid"),
    (2, 16, 16, 33, 16, "same"),
    (1, 22, 21, 64, 70, "valid"),
]
# The direct path's error on these shapes is 1e-7 to 1e-6 (relative to max |ref|); Winograd's
# was measured at the same level. The bound leaves a decade of room and still catches a wrong
# transform (errors of order 1).
WINOGRAD_TOL = 1e-5


@pytest.fixture
def winograd():
    previous = fastconv.get_conv_algorithm()
    fastconv.set_conv_algorithm("winograd")
    try:
        yield
    finally:
        fastconv.set_conv_algorithm(previous)


def _data(shape, seed):
    n, h, w, c, k, _ = shape
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = (r.standard_normal((3, 3, c, k)) / np.sqrt(9 * c)).astype(np.float32)
    bias = r.standard_normal(k).astype(np.float32)
    return x, kernel, bias, r


def _direct(fn):
    fastconv.set_conv_algorithm("direct")
    try:
        return fn()
    finally:
        fastconv.set_conv_algorithm("winograd")


def _takes_weight_gradient(x, kernel, y_shape, pad):
    plan = ops.conv._ConvPlan(x, kernel, 1, pad, 1)
    y = np.empty(y_shape, np.float32)
    reasons = dict(
        fastconv._core.conv_algorithm_reasons("weight_gradient", x, kernel, y, *plan.args())
    )
    return reasons["winograd"] == ""


@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_forward_and_input_gradient_match_the_reference(isa, winograd, shape):
    x, kernel, bias, r = _data(shape, 11)
    pad = shape[5]
    y = ops.conv2d(x, kernel, bias, padding=pad, activation="relu")
    expected = np.maximum(ref.conv2d(x, kernel, bias, padding=pad), 0.0)
    err = ref.rel_err(y, expected)
    assert err <= WINOGRAD_TOL, f"forward error {err:.3g}"
    dy = r.standard_normal(y.shape).astype(np.float32)
    dx, dk, db = ops.conv2d_grad(x, kernel, dy, padding=pad)
    rdx, rdk, rdb = ref.conv2d_grad(x, kernel, dy, padding=pad)
    err_dx = ref.rel_err(dx, rdx)
    assert err_dx <= WINOGRAD_TOL, f"input gradient error {err_dx:.3g}"
    err_dk = ref.rel_err(dk, rdk)
    assert err_dk <= WINOGRAD_TOL, f"weight gradient error {err_dk:.3g}"
    assert ref.rel_err(db, rdb) <= 1e-4
    # The Winograd path really ran: its rounding is not the direct path's. (The weight gradient
    # takes it when the input channels are a multiple of the row GEMM's tile height.)
    y_direct = _direct(lambda: ops.conv2d(x, kernel, bias, padding=pad, activation="relu"))
    dx_direct, dk_direct, _ = _direct(lambda: ops.conv2d_grad(x, kernel, dy, padding=pad))
    assert not np.array_equal(y, y_direct)
    assert not np.array_equal(dx, dx_direct)
    takes = _takes_weight_gradient(x, kernel, y.shape, pad)
    assert takes != np.array_equal(dk, dk_direct)
    # ...and is as accurate as the direct path, within a factor.
    assert err <= 10 * ref.rel_err(y_direct, expected) + 1e-6
    assert err_dx <= 10 * ref.rel_err(dx_direct, rdx) + 1e-6
    assert err_dk <= 10 * ref.rel_err(dk_direct, rdk) + 1e-6


def test_nan_and_relu_semantics_are_kept(isa, winograd):
    x, kernel, bias, _ = _data((1, 12, 12, 8, 16, "valid"), 3)
    x[0, 5, 6, 2] = np.nan
    y = ops.conv2d(x, kernel, bias, activation="relu")
    expected = np.isnan(ref.conv2d(x, kernel, bias))
    np.testing.assert_array_equal(np.isnan(y), expected)
    assert (y[~expected] >= 0).all()


# Shapes Winograd cannot take: stride 2, dilation, a 5x5 or 3x1 kernel.
DIRECT_CASES = [
    ((1, 15, 15, 16, 16), dict(strides=2)),
    ((1, 15, 15, 16, 16), dict(dilation_rate=2)),
    ((1, 12, 12, 16, 16), dict(kernel=(5, 5))),
    ((1, 12, 12, 16, 16), dict(kernel=(3, 1))),
]


@pytest.mark.parametrize("case", DIRECT_CASES, ids=[str(c) for c in DIRECT_CASES])
def test_shapes_it_does_not_apply_to_keep_the_direct_path(isa, winograd, case):
    (n, h, w, c, k), kw = case
    kw = dict(kw)
    kh, kwid = kw.pop("kernel", (3, 3))
    r = np.random.default_rng(5)
    x = r.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = r.standard_normal((kh, kwid, c, k)).astype(np.float32)
    y = ops.conv2d(x, kernel, **kw)
    dy = r.standard_normal(y.shape).astype(np.float32)
    dx = ops.conv2d_grad(x, kernel, dy, **kw)[0]
    np.testing.assert_array_equal(y, _direct(lambda: ops.conv2d(x, kernel, **kw)))
    np.testing.assert_array_equal(dx, _direct(lambda: ops.conv2d_grad(x, kernel, dy, **kw)[0]))


def test_a_model_trains_with_it(winograd):
    fastconv.utils.set_random_seed(7)
    r = np.random.default_rng(7)
    x = r.random((32, 14, 14, 1), dtype=np.float32)
    y = (x[:, :7].mean(axis=(1, 2, 3)) > x[:, 7:].mean(axis=(1, 2, 3))).astype("int64")
    inputs = fastconv.Input(shape=(14, 14, 1))
    h = fastconv.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = fastconv.layers.Conv2D(16, 3, activation="relu")(h)  # 12x12x8 -> 10x10x16: Winograd
    h = fastconv.layers.Flatten()(h)
    outputs = fastconv.layers.Dense(2, activation="softmax")(h)
    model = fastconv.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    weights = model.get_weights()
    losses = [model.train_on_batch(x, y) for _ in range(15)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # One step from the same weights on both paths: the same update, up to rounding.
    model.set_weights(weights)
    model.optimizer = fastconv.optimizers.RMSprop()
    model.train_on_batch(x, y)
    after_winograd = model.get_weights()

    def direct_step():
        model.set_weights(weights)
        model.optimizer = fastconv.optimizers.RMSprop()
        model.train_on_batch(x, y)
        return model.get_weights()

    for a, b in zip(after_winograd, _direct(direct_step)):
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max())


def test_switch_is_checked_and_reported():
    previous = fastconv.get_conv_algorithm()
    try:
        with pytest.raises(TypeError, match="enabled must be a bool"):
            fastconv.set_winograd(1)
        with pytest.warns(DeprecationWarning):
            fastconv.set_winograd(True)
        assert fastconv.info()["conv_algorithm"] == "winograd"
        with pytest.warns(DeprecationWarning):
            fastconv.set_winograd(False)
        assert fastconv.winograd_enabled() is False
    finally:
        fastconv.set_conv_algorithm(previous)


@pytest.mark.parametrize("value, expected", [("1", "winograd"), ("0", "direct"), ("", "auto")])
def test_environment_variable_at_import(value, expected):
    env = dict(os.environ, FASTCONV_WINOGRAD=value)
    env.pop("FASTCONV_CONV_ALGO", None)
    out = subprocess.run(
        [sys.executable, "-c", "import fastconv; print(fastconv.get_conv_algorithm())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_environment_variable_refuses_nonsense():
    env = dict(os.environ, FASTCONV_WINOGRAD="maybe")
    env.pop("FASTCONV_CONV_ALGO", None)
    out = subprocess.run(
        [sys.executable, "-c", "import fastconv"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "FASTCONV_WINOGRAD must be 0 or 1" in out.stderr
