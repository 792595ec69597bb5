"""How fastconv.ops takes its inputs: other dtypes, byte orders and layouts, non-contiguous and
misaligned buffers, empty batches, NaN, parameter types; inputs left untouched, outputs fresh."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from checks import check, check_exact
from fastconv import ops


def _views(a):
    """float64, Fortran order, a strided view and a reversed view of the same values."""
    big = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)
    big[..., ::2] = a
    yield "float64", a.astype(np.float64)
    yield "fortran", np.asfortranarray(a)
    yield "strided", big[..., ::2]
    rev = np.ascontiguousarray(a[::-1])[::-1]
    yield "reversed", rev


def test_conv2d_converts_inputs(isa, rng):
    x = rng.standard_normal((3, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 2, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    kw = dict(strides=(2, 1), padding="same")
    y = ops.conv2d(x, k, b, **kw)
    check(y, ref.conv2d(x, k, b, **kw))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.conv2d_grad(x, k, dy, **kw)
    for name, xv in _views(x):
        check(ops.conv2d(xv, k, b, **kw), y, tol=1e-6, what=f"x {name}")
        for g, e in zip(ops.conv2d_grad(xv, k, dy, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, x {name}")
    for name, kv in _views(k):
        check(ops.conv2d(x, kv, b, **kw), y, tol=1e-6, what=f"kernel {name}")
        for g, e in zip(ops.conv2d_grad(x, kv, dy, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, kernel {name}")
    for name, dyv in _views(dy):
        for g, e in zip(ops.conv2d_grad(x, k, dyv, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, dy {name}")
    kt = np.ascontiguousarray(k.transpose(3, 2, 0, 1)).transpose(2, 3, 1, 0)  # PyTorch layout view
    check(ops.conv2d(x, kt, b[::-1][::-1], **kw), y, tol=1e-6, what="kernel transposed view")
    check(ops.conv2d(x, k, b.astype(np.float64), **kw), y, tol=1e-6, what="bias float64")


def test_dense_pool_relu_losses_convert_inputs(isa, rng):
    x = rng.standard_normal((5, 17)).astype(np.float32)
    k = rng.standard_normal((17, 6)).astype(np.float32)
    dy = rng.standard_normal((5, 6)).astype(np.float32)
    y = ops.dense(x, k)
    grads = ops.dense_grad(x, k, dy)
    for name, xv in _views(x):
        check(ops.dense(xv, k), y, tol=1e-6, what=f"dense x {name}")
        check(ops.dense(x, np.asfortranarray(k)), y, tol=1e-6, what="dense kernel.T view")
        for g, e in zip(ops.dense_grad(xv, k, dy), grads):
            check(g, e, tol=1e-6, what=f"dense grad x {name}")
    for name, dyv in _views(dy):
        for g, e in zip(ops.dense_grad(x, k, dyv), grads):
            check(g, e, tol=1e-6, what=f"dense grad dy {name}")

    xi = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    ym = ops.max_pool2d(xi, 3, 2, "same")
    ya = ops.avg_pool2d(xi, 3, 2, "same")
    dyp = rng.standard_normal(ym.shape).astype(np.float32)
    gm = ops.max_pool2d_grad(xi, dyp, 3, 2, "same")
    ga = ops.avg_pool2d_grad(xi, dyp, 3, 2, "same")
    for name, xv in _views(xi):
        check(ops.max_pool2d(xv, 3, 2, "same"), ym, tol=0, what=f"max_pool x {name}")
        check(ops.avg_pool2d(xv, 3, 2, "same"), ya, tol=1e-6, what=f"avg_pool x {name}")
        check(ops.max_pool2d_grad(xv, dyp, 3, 2, "same"), gm, tol=1e-6, what=f"max grad {name}")
        check(ops.avg_pool2d_grad(xv, dyp, 3, 2, "same"), ga, tol=1e-6, what=f"avg grad {name}")
        check(ops.relu(xv), ops.relu(xi), tol=0, what=f"relu {name}")
        check(ops.relu_grad(xv, xv), ops.relu_grad(xi, xi), tol=0, what=f"relu_grad {name}")
    for name, dyv in _views(dyp):
        check(ops.max_pool2d_grad(xi, dyv, 3, 2, "same"), gm, tol=1e-6, what=f"max dy {name}")
        check(ops.avg_pool2d_grad(xi, dyv, 3, 2, "same"), ga, tol=1e-6, what=f"avg dy {name}")

    z = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.random((4, 5)).astype(np.float32)
    for name, zv in _views(z):
        check(ops.softmax(zv), ops.softmax(z), tol=1e-6, what=f"softmax {name}")
        check(ops.sigmoid(zv), ops.sigmoid(z), tol=1e-6, what=f"sigmoid {name}")
        for g, e in zip(ops.softmax_cross_entropy(zv, t), ops.softmax_cross_entropy(z, t)):
            check(g, e, tol=1e-6, what=f"CE {name}")
        for g, e in zip(
            ops.sigmoid_binary_cross_entropy(zv, t), ops.sigmoid_binary_cross_entropy(z, t)
        ):
            check(g, e, tol=1e-6, what=f"BCE {name}")
        lab = np.array([0, 4, 2, 1])
        for g, e in zip(
            ops.sparse_softmax_cross_entropy(zv, lab), ops.sparse_softmax_cross_entropy(z, lab)
        ):
            check(g, e, tol=1e-6, what=f"sparse CE {name}")


def test_empty_batch(isa):
    x = np.zeros((0, 7, 6, 3), np.float32)
    k = np.ones((3, 3, 3, 5), np.float32)
    b = np.ones(5, np.float32)
    y = ops.conv2d(x, k, b, strides=2, padding="same")
    assert y.shape == (0, 4, 3, 5) and y.dtype == np.float32
    dx, dk, db = ops.conv2d_grad(x, k, np.zeros((0, 5, 4, 5), np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32
    check_exact(dk, np.zeros(k.shape), "dkernel")
    check_exact(db, np.zeros(5), "dbias")
    assert ops.conv2d_grad(x, k, np.zeros((0, 5, 4, 5), np.float32), need_dx=False)[0] is None

    assert ops.max_pool2d(x).shape == (0, 3, 3, 3)
    assert ops.avg_pool2d(x, 3, 2, "same").shape == (0, 4, 3, 3)
    assert ops.max_pool2d_grad(x, np.zeros((0, 3, 3, 3), np.float32)).shape == x.shape
    assert ops.avg_pool2d_grad(x, np.zeros((0, 3, 3, 3), np.float32)).shape == x.shape
    assert ops.relu(x).shape == x.shape
    assert ops.relu_grad(x, x).shape == x.shape

    xd = np.zeros((0, 12), np.float32)
    kd = np.ones((12, 4), np.float32)
    assert ops.dense(xd, kd, np.ones(4, np.float32)).shape == (0, 4)
    gx, gk, gb = ops.dense_grad(xd, kd, np.zeros((0, 4), np.float32))
    assert gx.shape == (0, 12)
    check_exact(gk, np.zeros((12, 4)), "dense dkernel")
    check_exact(gb, np.zeros(4), "dense dbias")


def test_nan_propagates(isa, rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    x[1, 2, 3, 1] = np.nan
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    for kw in (dict(), dict(padding="same", strides=2), dict(dilation_rate=2)):
        rkw = {("dilation" if a == "dilation_rate" else a): v for a, v in kw.items()}
        y = ops.conv2d(x, k, **kw)
        expected_nan = np.isnan(ref.conv2d(x, k, **rkw))
        assert expected_nan.any()
        np.testing.assert_array_equal(np.isnan(y), expected_nan, err_msg=f"conv2d {kw}")
        yr = ops.conv2d(x, k, activation="relu", **kw)
        np.testing.assert_array_equal(np.isnan(yr), expected_nan, err_msg=f"conv2d relu {kw}")
    kn = k.copy()
    kn[1, 1, 0, 2] = np.nan
    assert np.isnan(ops.conv2d(x[:1], kn, padding="same")[..., 2]).all()
    assert not np.isnan(ops.conv2d(x[:1], kn, padding="same")[..., :2]).any()

    dy = rng.standard_normal((2, 4, 5, 4)).astype(np.float32)
    dy[0, 1, 1, 0] = np.nan
    xc = np.nan_to_num(x)
    gx, gk, gb = ops.conv2d_grad(xc, k, dy)
    rx, _, _ = ref.conv2d_grad(xc, k, dy)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(rx), err_msg="conv2d_grad dx")
    assert np.isnan(gk[..., 0]).all() and np.isnan(gb[0])

    xd = rng.standard_normal((3, 5)).astype(np.float32)
    xd[1, 2] = np.nan
    kd = rng.standard_normal((5, 4)).astype(np.float32)
    yd = ops.dense(xd, kd)
    assert np.isnan(yd[1]).all() and not np.isnan(yd[[0, 2]]).any()
    assert np.isnan(ops.dense(xd, kd, activation="relu")[1]).all()

    for pool in (ops.max_pool2d, ops.avg_pool2d):
        for kw in (dict(), dict(pool_size=3, strides=1, padding="same")):
            y = pool(x, **kw)
            touched = np.isnan(ref.avg_pool2d(x, **kw))  # the windows that hold the NaN
            np.testing.assert_array_equal(np.isnan(y), touched, err_msg=f"{pool.__name__} {kw}")

    r = ops.relu(np.array([np.nan, -1.0, 1.0], np.float32))
    assert np.isnan(r[0]) and r[1] == 0 and r[2] == 1


def test_output_shape_helpers_refuse_empty_outputs():
    with pytest.raises(ValueError):
        ops.conv2d_output_shape((2, 2), 3)
    with pytest.raises(ValueError):
        ops.conv2d_output_shape((5, 5), 3, dilation_rate=3)
    with pytest.raises(ValueError):
        ops.pool2d_output_shape((1, 4), 2)
    assert tuple(ops.conv2d_output_shape((2, 2), 3, padding="same")) == (2, 2)
    assert tuple(ops.pool2d_output_shape((1, 4), 2, padding="same")) == (1, 2)


def _misaligned(a, offset):
    """A C-contiguous float32 copy of `a` whose data starts `offset` bytes past a fresh buffer
    (offset 1: not even 4-byte aligned; 4, 12: aligned for float32 but not for SIMD)."""
    a = np.asarray(a, np.float32)
    buf = np.frombuffer(bytearray(a.nbytes + 64), np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start : start + a.nbytes].view(np.float32).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("offset", [1, 4, 12])
def test_misaligned_buffers(isa, rng, offset):
    x = rng.standard_normal((2, 9, 11, 17)).astype(np.float32)
    k = rng.standard_normal((3, 3, 17, 33)).astype(np.float32)
    dy = rng.standard_normal((2, 5, 6, 33)).astype(np.float32)
    kw = dict(strides=2, padding="same")
    xm, km, dym = (_misaligned(a, offset) for a in (x, k, dy))
    assert xm.ctypes.data % 64 == offset
    check(ops.conv2d(xm, km, **kw), ref.conv2d(x, k, **kw), what="conv2d")
    for got, exp in zip(ops.conv2d_grad(xm, km, dym, **kw), ref.conv2d_grad(x, k, dy, **kw)):
        check(got, exp, what="conv2d_grad")
    kd64 = rng.standard_normal((x[0].size, 33)).astype(np.float32)
    xd, kd = _misaligned(x.reshape(2, -1), offset), _misaligned(kd64, offset)
    check(ops.dense(xd, kd), ref.dense(xd, kd), what="dense")
    check(ops.relu(xm), ref.relu(x), what="relu")
    check(ops.max_pool2d(xm, 3, 2, "same"), ref.max_pool2d(x, 3, 2, "same"), what="max_pool2d")
    check(ops.avg_pool2d(xm, 3, 2, "same"), ref.avg_pool2d(x, 3, 2, "same"), what="avg_pool2d")
    if offset % 4 == 0:  # in-place updates need float32-aligned C-contiguous arrays
        w = rng.standard_normal(37).astype(np.float32)
        g = rng.standard_normal(37).astype(np.float32)
        wm, mm, vm = (
            _misaligned(w, offset),
            _misaligned(np.zeros(37), offset),
            _misaligned(np.zeros(37), offset),
        )
        ops.adam_update(wm, g, mm, vm, learning_rate=0.01, iteration=1)
        check(wm, ref.adam_step(w, g, np.zeros(37), np.zeros(37), 0.01, 1)[0], tol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.uint8])
def test_other_numeric_dtypes_are_converted(isa, rng, dtype):
    x = rng.integers(0, 4, size=(2, 6, 5, 3)).astype(dtype)
    k = rng.integers(-2, 3, size=(3, 3, 3, 4)).astype(dtype)
    check_exact(ops.conv2d(x, k, padding="same"), ref.conv2d(x, k, padding="same"), "conv2d")
    check_exact(ops.max_pool2d(x), ref.max_pool2d(x), "max_pool2d")
    check_exact(ops.relu(x), ref.relu(x), "relu")
    xd, kd = x.reshape(2, -1), rng.integers(-2, 3, size=(90, 4)).astype(dtype)
    check_exact(ops.dense(xd, kd), ref.dense(xd, kd), "dense")


def test_parameter_types(isa, rng):
    x = rng.standard_normal((1, 9, 8, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    exp = ref.conv2d(x, k, strides=(2, 1), dilation=(1, 2), padding="same")
    for s, d in [
        ((2, 1), (1, 2)),
        ([2, 1], [1, 2]),
        ((np.int64(2), np.int32(1)), np.array([1, 2])),
    ]:
        check(ops.conv2d(x, k, strides=s, dilation_rate=d, padding="same"), exp)
    check(ops.conv2d(x, k, strides=np.int64(2)), ref.conv2d(x, k, strides=2))
    check(ops.max_pool2d(x, np.int64(2), [1, 2]), ref.max_pool2d(x, 2, (1, 2)))
    check(
        ops.avg_pool2d(x, (np.int32(3), 2), None, "same"), ref.avg_pool2d(x, (3, 2), None, "same")
    )


def _snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def test_inputs_are_not_modified_and_outputs_are_fresh(isa, rng):
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    dyp = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    xd, kd = x.reshape(2, -1), rng.standard_normal((126, 5)).astype(np.float32)
    dyd = rng.standard_normal((2, 5)).astype(np.float32)
    z = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.random((4, 5)).astype(np.float32)
    lab = np.array([1, 0, 4, 2])
    inputs = (x, k, b, dy, dyp, xd, kd, dyd, z, t, lab)
    before = _snapshot(*inputs)
    for a in inputs:
        a.flags.writeable = False  # read-only inputs must be accepted
    calls = [
        (ops.conv2d(x, k, b, padding="same", activation="relu"), (x, k, b)),
        (ops.conv2d_grad(x, k, dy, padding="same"), (x, k, dy)),
        (ops.relu(x), (x,)),
        (ops.relu_grad(x, x), (x,)),
        (ops.max_pool2d(x), (x,)),
        (ops.max_pool2d_grad(x, dyp), (x, dyp)),
        (ops.avg_pool2d_grad(x, dyp), (x, dyp)),
        (ops.dense(xd, kd, activation="relu"), (xd, kd)),
        (ops.dense_grad(xd, kd, dyd), (xd, kd)),
        (ops.softmax(z), (z,)),
        (ops.sigmoid(z), (z,)),
        (ops.softmax_cross_entropy(z, t), (z, t)),
        (ops.sparse_softmax_cross_entropy(z, lab), (z,)),
        (ops.sigmoid_binary_cross_entropy(z, t), (z, t)),
    ]
    for a, b0 in zip(inputs, before):
        np.testing.assert_array_equal(a, b0, err_msg="an op modified its input")
    for i, (out, ins) in enumerate(calls):
        for o in out if isinstance(out, tuple) else (out,):
            if o is None:
                continue
            assert o.flags.writeable, f"call {i}: read-only output"
            assert not any(np.shares_memory(o, a) for a in ins), f"call {i}: output aliases input"


def test_inputs_in_other_byte_orders_and_layouts(isa, rng):
    x = rng.standard_normal((3, 9, 8, 5))
    kern = rng.standard_normal((3, 2, 5, 7))
    b = rng.standard_normal(7)
    expected = ref.conv2d(
        x.astype(np.float32), kern.astype(np.float32), b.astype(np.float32), 2, "same"
    )
    variants = [
        (x.astype(">f4"), kern.astype(">f8"), b.astype(">f4")),
        (np.asfortranarray(x), np.asfortranarray(kern), b),
        (np.repeat(x, 2, axis=3)[..., ::2], kern[::-1][::-1], b),
        (x.tolist(), kern.tolist(), b.tolist()),
    ]
    for xv, kv, bv in variants:
        check(ops.conv2d(xv, kv, bv, strides=2, padding="same"), expected)
