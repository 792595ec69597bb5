"""Assertions and inputs shared by the kernel tests: results against tests/reference.py.

Error measure (the contract's): max|got - ref| / max(1, max|ref|) <= 1e-4.
"""

from __future__ import annotations

import numpy as np
import reference as ref

TOL = 1e-4


def check(got, expected, tol=TOL, what="result"):
    """float32, C-contiguous, the reference's shape and within tol of it."""
    assert isinstance(got, np.ndarray), f"{what}: not an ndarray but {type(got)}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.flags.c_contiguous, f"{what}: not C-contiguous"
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape} != {np.shape(expected)}"
    err = ref.rel_err(got, expected)
    assert err <= tol, f"{what}: error {err:.3g} > {tol:g}"


def check_all(got, expected, names, tol=TOL):
    """check() over parallel sequences, e.g. the (dx, dkernel, dbias) of a gradient."""
    for g, e, name in zip(got, expected, names):
        check(g, e, tol=tol, what=name)


def check_exact(got, expected, what="result"):
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape} != {np.shape(expected)}"
    np.testing.assert_array_equal(got, np.asarray(expected, np.float32), err_msg=what)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def ints(rng, shape, lo=-3, hi=3):
    """Small integers as float32: every sum of their products is exact in float32."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32)


def assert_fd(analytic_grad, f, x0, v, eps, what, tol=1e-4):
    """The analytic gradient's derivative along v against a central difference of f."""
    g = np.asarray(analytic_grad, np.float64)
    got, scale = float((g * v).sum()), float(np.abs(g * v).sum())
    fd = ref.central_difference(f, np.asarray(x0, np.float64), v, eps)
    assert abs(got - fd) <= tol * max(1.0, scale), f"{what}: {got} vs finite difference {fd}"
