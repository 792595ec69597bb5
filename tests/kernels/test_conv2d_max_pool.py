"""The fused first-layer ops against the chains of reference ops they replace: conv2d with max
pooling in one pass, the first conv's weight gradient through ReLU and max pooling, and max
pooling's gradient through ReLU."""

from __future__ import annotations

import dataclasses

import fastconv
import numpy as np
import pytest
import reference as ref
from checks import check, f32
from fastconv import _core, ops


@pytest.mark.parametrize(
    "shape, pool, strides, padding",
    [
        ((3, 6, 7, 5), 2, None, "valid"),
        ((2, 7, 7, 33), 3, 2, "same"),  # overlapping windows, padded edge
        ((1, 5, 4, 17), (2, 3), 1, "same"),
    ],
)
def test_max_pool2d_relu_grad_is_relu_grad_of_max_pool_grad(
    isa, rng, shape, pool, strides, padding
):
    # x is a ReLU output: many exact zeros (whole zero windows included) and ties
    x = np.maximum(rng.integers(-3, 3, size=shape), 0).astype(np.float32)
    x[0, :2, :2, :] = 0.0
    out_h, out_w = ops.pool2d_output_shape(shape, pool, strides, padding)
    dy = rng.standard_normal((shape[0], out_h, out_w, shape[3])).astype(np.float32)
    expected = ref.relu_grad(x, ref.max_pool2d_grad(x, dy, pool, strides, padding))
    got = ops.max_pool2d_relu_grad(x, dy, pool, strides, padding)
    assert ref.rel_err(got, expected) <= 1e-6
    assert np.all(got[x == 0] == 0)


@dataclasses.dataclass(frozen=True)
class FirstLayer:
    """A first layer: conv (then max pooling whose windows tile its output)."""

    id: str
    n: int
    hw: tuple
    cin: int
    k: tuple
    cout: int
    pool: object = 2
    conv_kw: dict = dataclasses.field(default_factory=dict, hash=False)

    def data(self, rng):
        """x, kernel, bias and the reference's convolution arguments."""
        x = rng.standard_normal((self.n, *self.hw, self.cin)).astype(np.float32)
        kernel = rng.standard_normal((*self.k, self.cin, self.cout)).astype(np.float32)
        bias = rng.standard_normal(self.cout).astype(np.float32)
        rkw = dict(
            strides=self.conv_kw.get("strides", 1),
            padding=self.conv_kw.get("padding", "valid"),
            dilation=self.conv_kw.get("dilation_rate", 1),
        )
        return x, kernel, bias, rkw


FIRST_LAYER_POOL_CASES = [
    FirstLayer("mnist-first-layer", 4, (28, 28), 1, (3, 3), 32),  # the lecture's, smaller batch
    FirstLayer("odd-sizes", 3, (13, 11), 3, (3, 3), 17),  # a row and a column under no window
    FirstLayer("same", 2, (12, 12), 3, (3, 3), 33, conv_kw=dict(padding="same")),
    FirstLayer(
        "strided-pool3x2", 2, (15, 14), 2, (2, 3), 5, (3, 2), dict(strides=2, padding="same")
    ),
    FirstLayer(
        "dilated-pool3", 1, (9, 10), 4, (5, 5), 16, 3, dict(padding="same", dilation_rate=2)
    ),
    FirstLayer("1x1-pool1", 2, (7, 9), 1, (1, 1), 3, 1, dict(strides=(1, 2))),
    FirstLayer("8-channels", 2, (9, 9), 8, (3, 3), 12),  # the general paths
]
FIRST_LAYER_IDS = [c.id for c in FIRST_LAYER_POOL_CASES]


@pytest.mark.parametrize("c", FIRST_LAYER_POOL_CASES, ids=FIRST_LAYER_IDS)
def test_conv2d_relu_max_pool_weight_grad(isa, rng, c):
    """The fused first-layer gradient against the float64 chain it replaces: ReLU mask, max
    pooling's gradient (ties to the first maximal cell), then the convolution's weight gradient."""
    x, kernel, bias, rkw = c.data(rng)
    y = f32(ref.relu(ref.conv2d(x, kernel, bias, **rkw)))
    y[0, :2, :2, :] = 0.0  # a whole zero window passes nothing back through the ReLU
    y[-1, 2:4, 2:4, :3] = 1.5  # ties: the first maximal cell takes the gradient
    oh, ow = ops.pool2d_output_shape(y.shape, c.pool)
    pool_dy = rng.standard_normal((c.n, oh, ow, c.cout)).astype(np.float32)
    dz = ref.relu_grad(y, ref.max_pool2d_grad(y, pool_dy, c.pool))
    _, dk_ref, db_ref = ref.conv2d_grad(x, kernel, dz, **rkw)
    dk, db = ops.conv2d_relu_max_pool_weight_grad(
        x, kernel, y, pool_dy, pool_size=c.pool, **c.conv_kw
    )
    check(dk, dk_ref, what="dkernel")
    check(db, db_ref, what="dbias")


@pytest.mark.parametrize("c", FIRST_LAYER_POOL_CASES, ids=FIRST_LAYER_IDS)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_max_pool(isa, rng, c, activation):
    """The fused forward pass against the float64 convolution and pooling; without the kept
    convolution output, the same pooled result."""
    conv_kw = dict(c.conv_kw, activation=activation)
    x, kernel, bias, rkw = c.data(rng)
    y_ref = ref.conv2d(x, kernel, bias, activation=activation, **rkw)
    y, pooled = ops.conv2d_max_pool(x, kernel, bias, pool_size=c.pool, **conv_kw)
    check(y, y_ref, what="conv output")
    check(pooled, ref.max_pool2d(y_ref, c.pool), what="pooled")
    alone, pooled_alone = ops.conv2d_max_pool(
        x, kernel, bias, pool_size=c.pool, keep_conv_output=False, **conv_kw
    )
    assert alone is None
    np.testing.assert_array_equal(pooled_alone, pooled)


def test_first_layer_fused_ops_without_bias_and_with_nan(rng):
    """No bias; NaN in the conv output wins its window in the fused backward as in the two
    passes (fastconv's max pooling lets NaN win, unlike the reference's)."""
    x = rng.standard_normal((2, 10, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    y, pooled = ops.conv2d_max_pool(x, kernel, activation="relu")
    np.testing.assert_array_equal(y, ops.conv2d(x, kernel, activation="relu"))
    np.testing.assert_array_equal(pooled, ops.max_pool2d(y))
    y[0, 1, 1, 2] = np.nan
    pool_dy = rng.standard_normal(pooled.shape).astype(np.float32)
    dk, db = ops.conv2d_relu_max_pool_weight_grad(x, kernel, y, pool_dy)
    _, dk2, db2 = ops.conv2d_grad(x, kernel, ops.max_pool2d_relu_grad(y, pool_dy), need_dx=False)
    np.testing.assert_allclose(dk, dk2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, db2, rtol=1e-5, atol=1e-5)


def test_first_layer_fused_core_calls_refuse_pools_that_do_not_tile():
    """The bindings check what ops validates, without products that could wrap around."""
    x = np.zeros((1, 10, 10, 1), np.float32)
    kernel = np.zeros((3, 3, 1, 4), np.float32)
    y = np.zeros((1, 8, 8, 4), np.float32)
    pooled = np.zeros((1, 4, 4, 4), np.float32)
    dk, db = np.zeros((3, 3, 1, 4), np.float32), np.zeros(4, np.float32)
    huge = (2**62, 1)
    with pytest.raises(ValueError, match="tile|non-overlapping"):
        _core.conv2d_forward_max_pool(
            x, kernel, None, y, pooled, (8, 8), (1, 1), (1, 1), (0, 0), huge, True
        )
    with pytest.raises(ValueError, match="tile|non-overlapping"):
        _core.conv2d_backward_weight_through_max_pool(
            x, y, pooled, dk, db, (1, 1), (1, 1), (0, 0), huge
        )


def test_conv2d_relu_max_pool_weight_grad_rejects_bad_shapes(rng):
    x = rng.standard_normal((2, 10, 10, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    y = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"pool_dy.*\(2, 4, 4, 8\)"):
        ops.conv2d_relu_max_pool_weight_grad(x, kernel, y, np.zeros((2, 4, 4, 7), np.float32))
    with pytest.raises(ValueError, match=r"y.*\(2, 8, 8, 8\)"):
        ops.conv2d_relu_max_pool_weight_grad(
            x, kernel, np.zeros((2, 9, 8, 8), np.float32), np.zeros((2, 4, 4, 8), np.float32)
        )


@pytest.fixture
def conv_setting():
    previous = fastconv.get_conv_algorithm()
    yield
    fastconv.set_conv_algorithm(previous)


@pytest.mark.parametrize("c", FIRST_LAYER_POOL_CASES, ids=FIRST_LAYER_IDS)
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("setting", ["auto", "winograd"])
def test_argmax_tape_gives_the_gradients_of_the_conv_output(
    isa, rng, conv_setting, c, activation, setting
):
    """The argmax tape of conv2d_max_pool (the pooled Winograd path where forced or chosen)
    against the float64 chain it stands for: the pooled values, each recorded cell holding its
    window's maximum (255 exactly where a ReLU passes nothing), the pooling's gradient from the
    tape equal to the one from the conv output, and the weight gradient through the pooling."""
    fastconv.set_conv_algorithm(setting)
    x, kernel, bias, rkw = c.data(rng)
    conv_kw = dict(c.conv_kw, activation=activation)
    y_ref = ref.conv2d(x, kernel, bias, activation=activation, **rkw)
    argmax, pooled = ops.conv2d_max_pool(
        x, kernel, bias, pool_size=c.pool, return_argmax=True, **conv_kw
    )
    check(pooled, ref.max_pool2d(y_ref, c.pool), what="pooled")
    assert argmax.dtype == np.uint8 and argmax.shape == pooled.shape
    ph, pw = (c.pool, c.pool) if isinstance(c.pool, int) else c.pool
    none = argmax == 255
    if activation == "relu":
        np.testing.assert_array_equal(none, ~(pooled > 0))
    else:
        assert not none.any()
    # The recorded cell of each window holds the window's maximum (of fastconv's own y).
    y = f32(ops.conv2d(x, kernel, bias, activation=activation, **c.conv_kw))
    n, oh, ow, k = pooled.shape
    windows = y[:, : oh * ph, : ow * pw].reshape(n, oh, ph, ow, pw, k).transpose(0, 1, 3, 5, 2, 4)
    windows = windows.reshape(n, oh, ow, k, ph * pw)
    cell = np.where(none, 0, argmax).astype(np.int64)
    picked = np.take_along_axis(windows, cell[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(picked[~none], windows.max(-1)[~none], rtol=1e-5, atol=1e-5)
    first = np.argmax(windows == windows.max(-1, keepdims=True), axis=-1)
    np.testing.assert_array_equal(argmax[~none], first[~none])
    # Gradients from the tape: the pooling's, then the convolution's weights.
    dy = rng.standard_normal(pooled.shape).astype(np.float32)
    from_y = (ops.max_pool2d_relu_grad if activation == "relu" else ops.max_pool2d_grad)(
        y, dy, c.pool
    )
    from_tape = ops.max_pool2d_grad_from_argmax(argmax, dy, y.shape, c.pool)
    np.testing.assert_array_equal(from_tape, from_y)
    _, dk_ref, db_ref = ref.conv2d_grad(x, kernel, from_y.astype(np.float64), **rkw)
    dk, db = ops.conv2d_max_pool_weight_grad_from_argmax(
        x, kernel, argmax, dy, pool_size=c.pool, **c.conv_kw
    )
    check(dk, dk_ref, what="dkernel")
    check(db, db_ref, what="dbias")


def test_argmax_tape_errors_name_the_argument(rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    argmax, pooled = ops.conv2d_max_pool(x, kernel, return_argmax=True)
    dy = np.ones_like(pooled)
    with pytest.raises(TypeError, match="argmax must be the uint8"):
        ops.max_pool2d_grad_from_argmax(argmax.astype(np.int32), dy, (2, 6, 6, 4))
    with pytest.raises(ValueError, match="argmax must have shape"):
        ops.max_pool2d_grad_from_argmax(argmax[:1], dy, (2, 6, 6, 4))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.max_pool2d_grad_from_argmax(argmax, dy, (2, 8, 8, 4))
    with pytest.raises(ValueError, match="x_shape"):
        ops.max_pool2d_grad_from_argmax(argmax, dy, (6, 6, 4))
    with pytest.raises(ValueError, match="pool_dy must have shape"):
        ops.conv2d_max_pool_weight_grad_from_argmax(x, kernel, argmax, dy[:, :2])


def test_two_pass_scratch_is_the_callers(rng, conv_setting):
    """Without the conv output kept, a layer that takes the two passes writes it to the scratch
    the caller gives (a model's memory plan) and keeps nothing of its own; a scratch of the wrong
    shape is refused by name."""
    fastconv.set_conv_algorithm("direct")  # no pooled Winograd: the two passes
    x = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 6)).astype(np.float32)
    pooled = np.empty((2, 3, 3, 6), np.float32)
    scratch = np.full((2, 7, 7, 6), np.nan, np.float32)
    args = ((7, 7), (1, 1), (1, 1), (0, 0), (2, 2), True)
    _core.conv2d_forward_max_pool(x, kernel, None, None, pooled, *args, None, scratch)
    y_ref = ref.conv2d(x, kernel, None, activation="relu")
    check(scratch, y_ref, what="scratch")
    check(pooled, ref.max_pool2d(y_ref, 2), what="pooled")
    with pytest.raises(ValueError, match="scratch must be"):
        _core.conv2d_forward_max_pool(x, kernel, None, None, pooled, *args, None, scratch[:1])
