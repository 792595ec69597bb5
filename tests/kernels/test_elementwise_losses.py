"""ReLU, softmax, sigmoid and the fused losses of fastconv.ops against tests/reference.py,
with their gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from checks import assert_fd, check, check_exact
from fastconv import ops


@pytest.mark.parametrize("shape", [(7,), (3, 33), (2, 5, 7, 17), (1, 1, 1, 1), (4, 13, 13, 64)])
def test_relu_and_grad(isa, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:: max(1, x.size // 5)] = 0.0  # exact zeros: gradient 0 there
    dy = rng.standard_normal(shape).astype(np.float32)
    y = ops.relu(x)
    check_exact(y, ref.relu(x), "relu")
    check_exact(ops.relu_grad(x, dy), ref.relu_grad(x, dy), "relu_grad(x)")
    check_exact(ops.relu_grad(y, dy), ref.relu_grad(x, dy), "relu_grad(relu(x))")


@pytest.mark.parametrize("batch,classes", [(1, 1), (1, 10), (5, 3), (64, 10), (3, 33), (2, 1000)])
def test_softmax_sigmoid(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 5).astype(np.float32)
    z[0, 0] = 80.0  # would overflow exp() in float32 without the max shift
    check(ops.softmax(z), ref.softmax(z), what="softmax")
    check(ops.sigmoid(z), ref.sigmoid(z), what="sigmoid")
    big = np.array([[-1000.0, 0.0, 1000.0, -88.0, 89.0]], np.float32)
    check(ops.sigmoid(big), ref.sigmoid(big), what="sigmoid extremes")
    check(ops.softmax(big), ref.softmax(big), what="softmax extremes")
    assert np.isfinite(ops.softmax(big)).all() and np.isfinite(ops.sigmoid(big)).all()


@pytest.mark.parametrize("batch,classes", [(1, 2), (5, 3), (64, 10), (3, 33), (4, 1000)])
def test_losses(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    z[0, -1] = 60.0
    labels = rng.integers(0, classes, size=batch)
    labels[0] = 0  # far from the big logit: a large, finite loss
    for lab in (labels.astype(np.int64), labels.astype(np.int32)):
        loss, dz = ops.sparse_softmax_cross_entropy(z, lab)
        exp_loss, exp_dz = ref.sparse_softmax_cross_entropy(z, labels)
        check(loss, exp_loss, what="sparse CE loss")
        check(dz, exp_dz, what="sparse CE dlogits")

    onehot = np.eye(classes, dtype=np.float32)[labels]
    soft = rng.random((batch, classes)).astype(np.float32) * 0.7  # rows not summing to 1
    for t in (onehot, soft):
        loss, dz = ops.softmax_cross_entropy(z, t)
        exp_loss, exp_dz = ref.softmax_cross_entropy(z, t)
        check(loss, exp_loss, what="CE loss")
        check(dz, exp_dz, what="CE dlogits")

    zb = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    zb[0, 0], zb[-1, -1] = 90.0, -90.0
    tb = rng.random((batch, classes)).astype(np.float32)
    tb[0, 0], tb[-1, -1] = 0.0, 1.0  # very wrong: large finite losses
    loss, dz = ops.sigmoid_binary_cross_entropy(zb, tb)
    exp_loss, exp_dz = ref.sigmoid_binary_cross_entropy(zb, tb)
    check(loss, exp_loss, what="BCE loss")
    check(dz, exp_dz, what="BCE dlogits")
    zc = zb[:, 0].copy()
    tc = (rng.random(batch) > 0.5).astype(np.float32)
    check(ops.sigmoid_binary_cross_entropy(zc, tc)[0], ref.sigmoid_bce_loss(zc, tc), what="BCE 1-D")


def test_relu_grad_finite_differences(isa, rng):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    assert_fd(
        ops.relu_grad(x, dy),
        lambda t: float((ref.relu(t) * dy).sum()),
        x,
        rng.standard_normal(x.shape),
        1e-6,
        "relu_grad",
    )


@pytest.mark.parametrize("batch,classes", [(1, 2), (6, 10), (3, 33)])
def test_loss_grads_finite_differences(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 3).astype(np.float32)
    w = rng.standard_normal(batch)  # a random weighting of the per-sample losses
    v = rng.standard_normal(z.shape)
    labels = rng.integers(0, classes, size=batch)
    t = rng.random((batch, classes)).astype(np.float32)
    wb = rng.standard_normal(z.shape)
    # (name, the op's dlogits, the reference's per-sample loss, the weighting of the losses)
    cases = [
        (
            "sparse CE",
            ops.sparse_softmax_cross_entropy(z, labels)[1],
            lambda q: ref.sparse_softmax_cross_entropy_loss(q, labels),
            w[:, None],
        ),
        (
            "softmax CE",
            ops.softmax_cross_entropy(z, t)[1],
            lambda q: ref.softmax_cross_entropy_loss(q, t),
            w[:, None],
        ),
        (
            "sigmoid BCE",
            ops.sigmoid_binary_cross_entropy(z, t)[1],
            lambda q: ref.sigmoid_bce_loss(q, t),
            wb,
        ),
    ]
    for name, dz, loss, weight in cases:
        weights = weight if weight.shape == z.shape else weight[:, 0]
        assert_fd(
            dz * weight,
            lambda q, loss=loss, weights=weights: float((loss(q) * weights).sum()),
            z,
            v,
            1e-6,
            name,
        )


def test_relu_keeps_the_shape(isa):
    for shape in [(), (0,), (5,), (2, 0, 3), (2, 3, 1, 1, 2)]:
        x = np.full(shape, -1.5, np.float32)
        assert ops.relu(x).shape == shape, f"relu of shape {shape}"
        assert ops.relu_grad(x, x).shape == shape, f"relu_grad of shape {shape}"
    assert ops.relu(np.float32(2.5)) == 2.5


def test_empty_batch_losses(isa):
    z = np.zeros((0, 5), np.float32)
    assert ops.softmax(z).shape == (0, 5) and ops.sigmoid(z).shape == (0, 5)
    loss, dz = ops.sparse_softmax_cross_entropy(z, np.zeros(0, np.int64))
    assert loss.shape == (0,) and dz.shape == (0, 5)
    loss, dz = ops.softmax_cross_entropy(z, z)
    assert loss.shape == (0,) and dz.shape == (0, 5)
    loss, dz = ops.sigmoid_binary_cross_entropy(z, z)
    assert loss.shape == (0, 5) and dz.shape == (0, 5)
