"""ops.dense and ops.dense_grad against tests/reference.py: a grid of batch and feature counts,
exact small integers, the lecture's dense layers, finite differences, no input features."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import reference as ref
from checks import assert_fd, check, check_all, check_exact, ints
from fastconv import ops

GRADS = ("dx", "dkernel", "dbias")


@dataclasses.dataclass(frozen=True)
class DenseCase:
    """x of shape (batch, fin) times a (fin, fout) kernel."""

    batch: int
    fin: int
    fout: int

    @property
    def id(self):
        return f"b{self.batch}-{self.fin}->{self.fout}"


DENSE_CASES = [
    DenseCase(b, i, o)
    for b, i, o in itertools.product(
        # units up to 64 take the dot-product path, 65 and more the packed GEMM
        [1, 3, 5, 64],
        [1, 3, 17, 33, 130],
        [1, 3, 5, 10, 17, 31, 33, 64, 65, 130],
    )
    if (b + i + o) % 3 == 0
]


@pytest.mark.parametrize("c", DENSE_CASES, ids=[c.id for c in DENSE_CASES])
def test_dense(isa, c):
    r = np.random.default_rng(c.batch * 10000 + c.fin * 100 + c.fout)
    x = r.standard_normal((c.batch, c.fin), np.float32)
    k = r.standard_normal((c.fin, c.fout), np.float32)
    b = r.standard_normal(c.fout, np.float32)
    dy = r.standard_normal((c.batch, c.fout), np.float32)
    check(ops.dense(x, k, b), ref.dense(x, k, b), what="dense")
    check(ops.dense(x, k), ref.dense(x, k), what="dense without bias")
    relu_y = ops.dense(x, k, b, activation="relu")
    check(relu_y, ref.dense(x, k, b, activation="relu"), what="dense relu")
    check(relu_y, ops.relu(ops.dense(x, k, b)), tol=1e-6, what="fused relu vs relu(dense)")
    check_all(ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), GRADS)


EXACT_CASES = [
    DenseCase(1, 1, 1),
    DenseCase(3, 17, 33),
    DenseCase(64, 1152, 10),
    DenseCase(5, 31, 64),
]


@pytest.mark.parametrize("c", EXACT_CASES, ids=[c.id for c in EXACT_CASES])
def test_dense_exact_on_small_integers(isa, rng, c):
    x, k, b = ints(rng, (c.batch, c.fin)), ints(rng, (c.fin, c.fout)), ints(rng, (c.fout,))
    dy = ints(rng, (c.batch, c.fout))
    check_exact(ops.dense(x, k, b), ref.dense(x, k, b), "dense")
    for got, exp, name in zip(ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), GRADS):
        check_exact(got, exp, name)


LECTURE_DENSE = [DenseCase(64, 1152, 10), DenseCase(2, 12544, 1)]


@pytest.mark.parametrize("c", LECTURE_DENSE, ids=[c.id for c in LECTURE_DENSE])
def test_lecture_dense_layers(isa, c):
    r = np.random.default_rng(c.fin + c.fout)
    x = r.standard_normal((c.batch, c.fin), np.float32)
    k = (r.standard_normal((c.fin, c.fout)) / np.sqrt(c.fin)).astype(np.float32)
    b = r.standard_normal(c.fout, np.float32)
    dy = r.standard_normal((c.batch, c.fout), np.float32)
    check(ops.dense(x, k, b), ref.dense(x, k, b), what="dense")
    check_all(ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), GRADS)


def test_dense_grad_finite_differences(isa, rng):
    x = rng.standard_normal((5, 17)).astype(np.float32)
    k = rng.standard_normal((17, 33)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    dy = rng.standard_normal((5, 33)).astype(np.float32)
    gx, gk, gb = ops.dense_grad(x, k, dy)

    def loss(xx, kk, bb):
        return float((ref.dense(xx, kk, bb) * dy).sum())

    assert_fd(gx, lambda t: loss(t, k, b), x, rng.standard_normal(x.shape), 1e-3, "dx")
    assert_fd(gk, lambda t: loss(x, t, b), k, rng.standard_normal(k.shape), 1e-3, "dkernel")
    assert_fd(gb, lambda t: loss(x, k, t), b, rng.standard_normal(b.shape), 1e-3, "dbias")


def test_dense_with_zero_input_features(isa, rng):
    """in_features == 0: y = bias and dbias = dy.sum(0) (or a clean refusal)."""
    x, k = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    try:
        y = ops.dense(x, k, b)
        grads = ops.dense_grad(x, k, dy)
    except ValueError:
        return
    check(y, ref.dense(x, k, b), what="dense")
    check_all(grads, ref.dense_grad(x, k, dy), GRADS)
