"""The in-place optimizer updates of fastconv.ops (SGD, RMSprop, Adam): several steps against
the Keras formulas in tests/reference.py, writing into the caller's arrays."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from checks import check
from fastconv import ops


def _opt_arrays(rng, shape=(33, 17)):
    w = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(6)]
    grads[2][0, :] = 0.0  # zero gradients are a corner for rmsprop
    return w, grads


def _assert_in_place(arr, before_id, before_ptr, name):
    assert id(arr) == before_id and arr.ctypes.data == before_ptr, f"{name} replaced"


@pytest.mark.parametrize(
    "lr,momentum,nesterov",
    [(0.01, 0.0, False), (0.1, 0.9, False), (0.05, 0.9, True), (0.3, 0.5, True)],
)
def test_sgd_update(isa, rng, lr, momentum, nesterov):
    w, grads = _opt_arrays(rng)
    buf = np.zeros_like(w) if momentum else None
    w64, m64 = w.astype(np.float64), np.zeros(w.shape)
    wid, wptr = id(w), w.ctypes.data
    for g in grads:
        ops.sgd_update(w, g, buf, learning_rate=lr, momentum=momentum, nesterov=nesterov)
        w64, m64 = ref.sgd_step(w64, g, m64, lr, momentum, nesterov)
        _assert_in_place(w, wid, wptr, "param")
        check(w, w64, tol=1e-5, what="param")
        if momentum:
            check(buf, m64, tol=1e-5, what="momentum buffer")


@pytest.mark.parametrize("lr,rho,eps", [(0.001, 0.9, 1e-7), (0.01, 0.5, 1e-3)])
def test_rmsprop_update(isa, rng, lr, rho, eps):
    w, grads = _opt_arrays(rng)
    vel = np.zeros_like(w)
    w64, v64 = w.astype(np.float64), np.zeros(w.shape)
    ids = (id(w), w.ctypes.data, id(vel), vel.ctypes.data)
    for g in grads:
        ops.rmsprop_update(w, g, vel, learning_rate=lr, rho=rho, epsilon=eps)
        w64, v64 = ref.rmsprop_step(w64, g, v64, lr, rho, eps)
        _assert_in_place(w, ids[0], ids[1], "param")
        _assert_in_place(vel, ids[2], ids[3], "velocity")
        check(w, w64, tol=1e-5, what="param")
        check(vel, v64, tol=1e-5, what="velocity")
    d = ops.rmsprop_update
    w2, v2 = np.ones(3, np.float32), np.zeros(3, np.float32)
    d(w2, np.ones(3, np.float32), v2, learning_rate=0.001)  # defaults rho=0.9 eps=1e-7
    check(w2, ref.rmsprop_step(np.ones(3), np.ones(3), np.zeros(3), 0.001)[0], tol=1e-6)


@pytest.mark.parametrize("lr,b1,b2,eps", [(0.001, 0.9, 0.999, 1e-7), (0.1, 0.5, 0.9, 1e-4)])
def test_adam_update(isa, rng, lr, b1, b2, eps):
    w, grads = _opt_arrays(rng)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w64, m64, v64 = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    ids = (id(w), w.ctypes.data, id(m), m.ctypes.data, id(v), v.ctypes.data)
    for t, g in enumerate(grads, start=1):
        ops.adam_update(
            w, g, m, v, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, iteration=t
        )
        w64, m64, v64 = ref.adam_step(w64, g, m64, v64, lr, t, b1, b2, eps)
        _assert_in_place(w, ids[0], ids[1], "param")
        _assert_in_place(m, ids[2], ids[3], "m")
        _assert_in_place(v, ids[4], ids[5], "v")
        check(w, w64, tol=1e-5, what=f"param step {t}")
        check(m, m64, tol=1e-5, what=f"m step {t}")
        check(v, v64, tol=1e-5, what=f"v step {t}")
    w2, m2, v2 = np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
    ops.adam_update(w2, np.full(3, 2, np.float32), m2, v2, learning_rate=0.001, iteration=1)
    exp = ref.adam_step(np.ones(3), np.full(3, 2.0), np.zeros(3), np.zeros(3), 0.001, 1)[0]
    check(w2, exp, tol=1e-6, what="adam defaults")


def test_optimizers_accept_converted_grads(rng):
    w = rng.standard_normal((4, 6)).astype(np.float32)
    g = rng.standard_normal((6, 4)).T  # float64, non-contiguous
    w1 = w.copy()
    ops.sgd_update(w1, g, None, learning_rate=0.1)
    check(w1, ref.sgd_step(w, g, None, 0.1)[0], tol=1e-6)
