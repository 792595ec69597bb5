"""ops.max_pool2d / ops.avg_pool2d and their gradients against tests/reference.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import reference as ref
from checks import assert_fd, check, check_exact, ints
from fastconv import _core, ops

from kernels.cases import PADDINGS, POOL_CASES, PoolCase, pool_case_data, pool_params


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("i", **pool_params())
def test_pool2d_and_grad(isa, i, mode):
    kw = POOL_CASES[i].kw
    x, dy = pool_case_data(i)
    forward, backward = f"{mode}_pool2d", f"{mode}_pool2d_grad"
    check(getattr(ops, forward)(x, **kw), getattr(ref, forward)(x, **kw), what=forward)
    expected = getattr(ref, backward)(x, dy, **kw)
    check(getattr(ops, backward)(x, dy, **kw), expected, what=backward)


@pytest.mark.parametrize("i", **pool_params())
def test_max_pool2d_grad_overwrites_every_cell(isa, i):
    """dx comes from np.empty: every cell, reached by a window or not, must be written."""
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    plan = ops.pooling._PoolPlan(x, c.pool_size, c.strides, c.padding, "max_pool2d_grad")
    dx = np.full(x.shape, np.nan, np.float32)
    _core.max_pool2d_backward(x, dy, dx, *plan.args())
    check(dx, ref.max_pool2d_grad(x, dy, **c.kw), what="max_pool2d_grad into a dirty buffer")


@pytest.mark.parametrize("i", [0, 9, 14, 21, 33, 38])
def test_pool_grads_finite_differences(isa, i):
    kw = POOL_CASES[i].kw
    x, dy = pool_case_data(i)
    v = np.random.default_rng(i).standard_normal(x.shape)
    for name, eps in (("max_pool2d", 1e-6), ("avg_pool2d", 1e-3)):
        forward = getattr(ref, name)
        assert_fd(
            getattr(ops, f"{name}_grad")(x, dy, **kw),
            lambda t, forward=forward: float((forward(t, **kw) * dy).sum()),
            x,
            v,
            eps,
            f"{name}_grad",
        )


@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_pool2d_output_shape(i):
    c = POOL_CASES[i]
    expected = ref.pool_output_shape((c.h, c.w), **c.kw)
    assert tuple(ops.pool2d_output_shape((c.h, c.w), **c.kw)) == expected
    assert tuple(ops.pool2d_output_shape((2, c.h, c.w, 3), **c.kw)) == expected


@pytest.mark.parametrize("pool_size,strides", [(2, None), (3, 1), (3, 2), ((2, 3), (1, 2))])
@pytest.mark.parametrize("padding", PADDINGS)
def test_max_pool2d_ties_go_to_first_max(isa, rng, pool_size, strides, padding):
    x = rng.integers(0, 2, size=(3, 9, 8, 5)).astype(np.float32)  # ties everywhere
    kw = dict(pool_size=pool_size, strides=strides, padding=padding)
    y = ops.max_pool2d(x, **kw)
    check_exact(y, ref.max_pool2d(x, **kw), "max_pool2d")
    dy = ints(rng, y.shape, 1, 3)  # positive integers: exact sums of the routed gradients
    check_exact(ops.max_pool2d_grad(x, dy, **kw), ref.max_pool2d_grad(x, dy, **kw), "dx")


def test_max_pool2d_tie_hand_case(isa):
    x = np.array([[5, 5], [5, 1]], np.float32).reshape(1, 2, 2, 1)
    dx = ops.max_pool2d_grad(x, np.array([[[[7.0]]]], np.float32))
    check_exact(dx, np.array([[7, 0], [0, 0]], np.float32).reshape(1, 2, 2, 1), "dx")
    x = np.array([[1, 2], [2, 2]], np.float32).reshape(1, 2, 2, 1)
    dx = ops.max_pool2d_grad(x, np.array([[[[3.0]]]], np.float32))
    check_exact(dx, np.array([[0, 3], [0, 0]], np.float32).reshape(1, 2, 2, 1), "dx")


def test_max_pool2d_same_ignores_padding(isa, rng):
    # all values negative: a zero-padded max would return 0 at the border
    x = (-1.0 - rng.random((2, 5, 7, 3))).astype(np.float32)
    for p, s in [(2, 2), (3, 2), (2, 1), (3, 3)]:
        y = ops.max_pool2d(x, p, s, "same")
        assert (y < 0).all(), f"padding taken as a value: pool {p} strides {s}"
        check(y, ref.max_pool2d(x, p, s, "same"))
        dy = np.ones_like(y)
        check(ops.max_pool2d_grad(x, dy, p, s, "same"), ref.max_pool2d_grad(x, dy, p, s, "same"))


def test_max_pool2d_infinite_values(isa, rng):
    x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    x[0, :3, :3, :] = -np.inf  # whole windows of -inf: the first inside cell gets the gradient
    x[1, 2, 2, 1] = np.inf
    for p, s, pad in [(2, 2, "same"), (3, 1, "same"), (2, 1, "valid"), (3, 2, "same")]:
        y = ops.max_pool2d(x, p, s, pad)
        check_exact(y, ref.max_pool2d(x, p, s, pad), "max_pool2d")
        dy = ints(rng, y.shape, 1, 3)
        check_exact(
            ops.max_pool2d_grad(x, dy, p, s, pad), ref.max_pool2d_grad(x, dy, p, s, pad), "dx"
        )


@pytest.mark.parametrize("channels", [3, 8, 17, 32, 35])
def test_max_pool2d_nan_in_every_cell_position(isa, rng, channels):
    """A NaN in any of a 2x2 window's cells (whatever the others hold, inf included) makes the
    pooled value NaN, and only that one: the inference path takes a plain max and puts NaNs back."""
    x = rng.standard_normal((4, 6, 8, channels)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # top-left cell
    x[1, 2, 3, channels - 1] = np.nan  # top-right, the last channel (a vector lane at 32)
    x[2, 5, 4, channels // 2] = np.nan  # bottom-left
    x[3, 3, 7, 0] = np.nan  # bottom-right, beside an inf
    x[3, 2, 6, 0] = np.inf
    x[2, 0:2, 0:2, :] = np.nan  # every cell of a window
    y = ops.max_pool2d(x, 2, 2, "valid")
    # NumPy's max propagates NaN, as max pooling should (tests/reference.py's strict > does not)
    windows = x.reshape(4, 3, 2, 4, 2, channels).astype(np.float64)
    expected = windows.max(axis=(2, 4))
    assert np.isnan(expected).sum() == 4 + channels
    assert np.array_equal(np.isnan(y), np.isnan(expected)), "NaN positions"
    check_exact(np.nan_to_num(y), np.nan_to_num(expected), "max_pool2d values")


def test_avg_pool2d_same_averages_only_inside_cells(isa):
    x = np.ones((1, 5, 7, 2), np.float32)
    for p, s in [(2, 2), (3, 2), (2, 1), (3, 3), ((2, 3), (1, 2))]:
        check(
            ops.avg_pool2d(x, p, s, "same"),
            np.ones((1, *ref.pool_output_shape((5, 7), p, s, "same"), 2)),
        )


def test_pool_defaults(isa, rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    check(ops.max_pool2d(x), ref.max_pool2d(x, 2, 2, "valid"))
    check(ops.avg_pool2d(x), ref.avg_pool2d(x, 2, 2, "valid"))
    check(ops.max_pool2d(x, 3), ref.max_pool2d(x, 3, 3, "valid"))
    check(ops.avg_pool2d(x, (2, 3), padding="same"), ref.avg_pool2d(x, (2, 3), (2, 3), "same"))


@dataclasses.dataclass(frozen=True)
class LecturePool:
    """A max pooling layer of the lecture's models: batch, square size, channels."""

    n: int
    hw: int
    c: int

    @property
    def id(self):
        return f"n{self.n}-{self.hw}x{self.hw}x{self.c}"


LECTURE_POOL = [
    LecturePool(64, 26, 32),
    LecturePool(64, 11, 64),
    LecturePool(2, 178, 32),
    LecturePool(2, 87, 64),
    LecturePool(2, 41, 128),
    LecturePool(2, 18, 256),
]


@pytest.mark.parametrize("case", LECTURE_POOL, ids=[c.id for c in LECTURE_POOL])
def test_lecture_pool_layers(isa, case):
    r = np.random.default_rng(case.hw * 1000 + case.c)
    x = r.standard_normal((case.n, case.hw, case.hw, case.c), np.float32)
    y = ref.max_pool2d(x)
    dy = r.standard_normal(y.shape, np.float32)
    check(ops.max_pool2d(x), y, what="max_pool2d")
    check(ops.max_pool2d_grad(x, dy), ref.max_pool2d_grad(x, dy), what="max_pool2d_grad")


UNUSUAL_POOL = [
    PoolCase(7, 9, 8, 300, (3, 2), (2, 3), "same"),
    PoolCase(1, 1, 1, 5, (3, 3), None, "same"),
    PoolCase(7, 11, 6, 17, (2, 2), (5, 4), "valid"),  # strides bigger than the window
    PoolCase(2, 5, 13, 33, (5, 1), (1, 6), "same"),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("c", UNUSUAL_POOL, ids=[c.id for c in UNUSUAL_POOL])
def test_pools_on_unusual_shapes(isa, rng, c, mode):
    x = np.round(rng.standard_normal((c.n, c.h, c.w, c.c)) * 2).astype(np.float32)  # many ties
    forward, backward = f"{mode}_pool2d", f"{mode}_pool2d_grad"
    y = getattr(ref, forward)(x, **c.kw)
    check(getattr(ops, forward)(x, **c.kw), y, what=forward)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    expected = getattr(ref, backward)(x, dy, **c.kw)
    check(getattr(ops, backward)(x, dy, **c.kw), expected, what=backward)
