"""tests/reference.py itself: against an explicit loop, and (where PyTorch is installed) against
PyTorch in float64, on the kernel tests' case grids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference as ref

from kernels.cases import CONV_CASES, POOL_CASES, conv_case_data, pool_case_data


def test_conv2d_reference_matches_hand_formula():
    # the reference itself against an explicit 7-fold loop on a tiny case
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 5, 6, 2))
    k = r.standard_normal((2, 3, 2, 3))
    sh, sw, dh, dw = 2, 1, 1, 2
    oh, (pt, _) = ref.out_and_pad(5, 2, sh, dh, "same")
    ow, (pl, _) = ref.out_and_pad(6, 3, sw, dw, "same")
    y = np.zeros((2, oh, ow, 3))
    for n, i, j, a, b, ci, co in itertools.product(
        range(2), range(oh), range(ow), range(2), range(3), range(2), range(3)
    ):
        hi, wi = i * sh + a * dh - pt, j * sw + b * dw - pl
        if 0 <= hi < 5 and 0 <= wi < 6:
            y[n, i, j, co] += x[n, hi, wi, ci] * k[a, b, ci, co]
    got = ref.conv2d(x, k, strides=(sh, sw), padding="same", dilation=(dh, dw))
    np.testing.assert_allclose(got, y, atol=1e-12)


# ============================================================================================
# the lecture models' layer shapes


def _torch_conv(x, k, strides, padding, dilation):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    kh, kw = k.shape[:2]
    sh, sw = ref.pair(strides)
    dh, dw = ref.pair(dilation)
    _, (pt, pb) = ref.out_and_pad(x.shape[1], kh, sh, dh, padding)
    _, (pl, pr) = ref.out_and_pad(x.shape[2], kw, sw, dw, padding)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    kt = torch.tensor(k.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    y = tf.conv2d(tf.pad(xt, (pl, pr, pt, pb)), kt, stride=(sh, sw), dilation=(dh, dw))
    return xt, kt, y


@pytest.mark.parametrize("i", range(0, len(CONV_CASES), 4))
def test_reference_conv_matches_torch(i):
    c = CONV_CASES[i]
    x, k, b, y, dy, (dx, dk, db) = conv_case_data(i)
    xt, kt, yt = _torch_conv(x, k, c.strides, c.padding, c.dilation)
    y0 = ref.conv2d(x, k, None, **c.rkw)
    np.testing.assert_allclose(yt.detach().numpy().transpose(0, 2, 3, 1), y0, atol=1e-9)
    import torch

    (yt * torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy().transpose(0, 2, 3, 1), dx, atol=1e-9)
    np.testing.assert_allclose(kt.grad.numpy().transpose(2, 3, 1, 0), dk, atol=1e-9)


@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_reference_pools_match_torch(i):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    ph, pw = ref.pair(c.pool_size)
    sh, sw = ref.pair(c.strides if c.strides is not None else c.pool_size)
    _, (pt, pb) = ref.out_and_pad(x.shape[1], ph, sh, 1, c.padding)
    _, (pl, pr) = ref.out_and_pad(x.shape[2], pw, sw, 1, c.padding)
    dyt = torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64)

    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    y = tf.max_pool2d(tf.pad(xt, (pl, pr, pt, pb), value=-np.inf), (ph, pw), (sh, sw))
    (y * dyt).sum().backward()
    np.testing.assert_allclose(y.detach().numpy().transpose(0, 2, 3, 1), ref.max_pool2d(x, **c.kw))
    np.testing.assert_allclose(
        xt.grad.numpy().transpose(0, 2, 3, 1), ref.max_pool2d_grad(x, dy, **c.kw), atol=1e-12
    )

    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    s = tf.avg_pool2d(tf.pad(xt, (pl, pr, pt, pb)), (ph, pw), (sh, sw), divisor_override=1)
    ones = tf.pad(torch.ones((1, 1, *x.shape[1:3]), dtype=torch.float64), (pl, pr, pt, pb))
    y = s / tf.avg_pool2d(ones, (ph, pw), (sh, sw), divisor_override=1)
    (y * dyt).sum().backward()
    np.testing.assert_allclose(
        y.detach().numpy().transpose(0, 2, 3, 1), ref.avg_pool2d(x, **c.kw), atol=1e-12
    )
    np.testing.assert_allclose(
        xt.grad.numpy().transpose(0, 2, 3, 1), ref.avg_pool2d_grad(x, dy, **c.kw), atol=1e-12
    )


def test_reference_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    r = np.random.default_rng(3)
    z = r.standard_normal((6, 7)) * 3
    lab = r.integers(0, 7, 6)
    t = r.random((6, 7))
    zt = torch.tensor(z)
    np.testing.assert_allclose(
        tf.cross_entropy(zt, torch.tensor(lab), reduction="none").numpy(),
        ref.sparse_softmax_cross_entropy(z, lab)[0],
    )
    np.testing.assert_allclose(
        -(torch.tensor(t) * tf.log_softmax(zt, -1)).sum(-1).numpy(),
        ref.softmax_cross_entropy(z, t)[0],
    )
    np.testing.assert_allclose(
        tf.binary_cross_entropy_with_logits(zt, torch.tensor(t), reduction="none").numpy(),
        ref.sigmoid_binary_cross_entropy(z, t)[0],
    )
    np.testing.assert_allclose(torch.softmax(zt, -1).numpy(), ref.softmax(z))
    np.testing.assert_allclose(torch.sigmoid(zt).numpy(), ref.sigmoid(z))


def test_reference_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    w0 = r.standard_normal(10)
    grads = [r.standard_normal(10) for _ in range(5)]
    # torch SGD (dampening 0) keeps b = mu*b + g and steps w -= lr*b; Keras' m = -lr*b
    for mom, nest in [(0.0, False), (0.9, False), (0.9, True)]:
        p = torch.tensor(w0, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1, momentum=mom, nesterov=nest)
        w, m = w0.copy(), np.zeros(10)
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
            w, m = ref.sgd_step(w, g, m, 0.1, mom, nest)
        np.testing.assert_allclose(p.detach().numpy(), w, atol=1e-12)
    # torch Adam puts eps outside sqrt(v_hat): eps_torch = eps_keras / sqrt(1 - b2^t) per step,
    # so compare with eps tiny where both agree
    p = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-12)
    w, m, v = w0.copy(), np.zeros(10), np.zeros(10)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        w, m, v = ref.adam_step(w, g, m, v, 0.01, t, eps=1e-12)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9)
