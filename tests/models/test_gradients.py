"""A model's gradients: fused and unfused losses, the lecture model's gradients against finite
differences of an independent float64 forward, and fused and unfused execution plans
(conv + max pooling, the first conv's weight gradient through the pooling) giving the same
results."""

from __future__ import annotations

import numpy as np
import pytest
from fastconv import Input, _random, layers, losses, ops
from fastconv.applications import mnist_convnet
from fastconv.models import Model, Sequential
from numpy.lib.stride_tricks import sliding_window_view


# --------------------------------------------------------------------------- losses
def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_fused_and_unfused_crossentropies_agree(rng):
    z = rng.standard_normal((6, 5)).astype(np.float32) * 2
    p = _np_softmax(z.astype(np.float64)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    onehot = np.eye(5, dtype=np.float32)[labels]
    n = len(z)
    # reference: mean over batch of -log softmax, grad wrt logits (softmax - onehot) / n
    ref_loss = -np.log(_np_softmax(z.astype(np.float64))[np.arange(n), labels])
    ref_dz = (_np_softmax(z.astype(np.float64)) - onehot) / n
    for loss, t in (
        (losses.SparseCategoricalCrossentropy(), labels),
        (losses.CategoricalCrossentropy(), onehot),
    ):
        t = loss.prepare_targets(t, z.shape)
        per_f, dz_f = loss.compute_from_logits(t, z)
        per_u, dp_u = loss.compute(t, p)
        np.testing.assert_allclose(per_f, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(per_u, ref_loss, rtol=1e-4)
        np.testing.assert_allclose(dz_f, ref_dz, rtol=1e-4, atol=1e-7)
        # chain the unfused probability gradient through the softmax Jacobian
        dz_u = p * (dp_u - np.sum(dp_u * p, axis=-1, keepdims=True))
        np.testing.assert_allclose(dz_u, ref_dz, rtol=1e-3, atol=1e-6)
        # from_logits=True is the same computation as the fused one
        per_l, dz_l = type(loss)(from_logits=True).compute(t, z)
        np.testing.assert_allclose(per_l, per_f, rtol=1e-6)
        np.testing.assert_allclose(dz_l, dz_f, rtol=1e-6)


def test_fused_and_unfused_binary_crossentropy_agree(rng):
    z = rng.standard_normal((8, 1)).astype(np.float32) * 3
    t = rng.integers(0, 2, (8,)).astype(np.float32)
    loss = losses.BinaryCrossentropy()
    tt = loss.prepare_targets(t, z.shape)
    p = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(np.float32)
    zz, t64 = z[:, 0].astype(np.float64), t.astype(np.float64)
    ref = np.maximum(zz, 0) - zz * t64 + np.log1p(np.exp(-np.abs(zz)))
    per_f, dz_f = loss.compute_from_logits(tt, z)
    per_u, dp_u = loss.compute(tt, p)
    np.testing.assert_allclose(per_f, ref, rtol=1e-5)
    np.testing.assert_allclose(per_u, ref, rtol=1e-4)
    np.testing.assert_allclose(dz_f[:, 0], (1 / (1 + np.exp(-zz)) - t64) / 8, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(dp_u * p * (1 - p), dz_f, rtol=1e-3, atol=1e-6)


def test_model_uses_fused_loss_for_softmax_output():
    """With saturated logits, the fused loss is exact while clipping would cap it at 16.1."""
    inputs = Input(shape=(2,))
    model = Model(inputs, layers.Dense(2, activation="softmax", use_bias=False)(inputs))
    model.set_weights([np.array([[40.0, -40.0], [0.0, 0.0]], np.float32)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    loss = model.evaluate(np.array([[1.0, 0.0]], np.float32), np.array([1]), verbose=0)
    np.testing.assert_allclose(loss, 80.0, rtol=1e-5)
    unfused = losses.SparseCategoricalCrossentropy()(
        np.array([1]), model.predict(np.array([[1.0, 0.0]]), verbose=0)
    )
    np.testing.assert_allclose(unfused, -np.log(1e-7), rtol=1e-5)


@pytest.fixture
def eager_threads():
    """Every kernel splits its work across all threads (small shapes otherwise run on one)."""
    from fastconv import _core

    previous = _core._get_min_thread_nanos()
    _core._set_min_thread_nanos(0.0)
    yield
    _core._set_min_thread_nanos(previous)


# --------------------------------------------------------------------------- gradients
def _ref_forward(ws, x, labels, pattern=None):
    """float64 NumPy forward of the lecture model + mean sparse crossentropy (independent).

    If ``pattern`` is a list, the ReLU signs and max-pool argmaxes are appended to it: where two
    points have different patterns, the loss is not smooth between them.
    """
    record = pattern.append if pattern is not None else (lambda a: None)

    def conv_relu(a, k, b):
        win = sliding_window_view(a, (k.shape[0], k.shape[1]), axis=(1, 2))
        z = np.einsum("nhwcij,ijco->nhwo", win, k) + b
        record(z > 0)
        return np.maximum(z, 0.0)

    def pool(a):
        n, h, w, c = a.shape
        a = a[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
        record(a.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4).argmax(-1))
        return a.max(axis=(2, 4))

    k1, b1, k2, b2, k3, b3, kd, bd = ws
    a = pool(conv_relu(x, k1, b1))
    a = pool(conv_relu(a, k2, b2))
    a = conv_relu(a, k3, b3).reshape(len(x), -1)
    z = a @ kd + bd
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(x)), labels].mean()


def _central_difference(ws, i, delta, x, labels):
    """(L(w + delta) - L(w - delta)) / 2 along weight i, or None if a kink lies in between."""
    wp, wm = list(ws), list(ws)
    wp[i], wm[i] = ws[i] + delta, ws[i] - delta
    pp, pm = [], []
    lp, lm = _ref_forward(wp, x, labels, pp), _ref_forward(wm, x, labels, pm)
    if any(not np.array_equal(a, b) for a, b in zip(pp, pm)):
        return None
    return (lp - lm) / 2


@pytest.mark.parametrize("seed", [0, 1])
def test_lecture_model_gradients_match_finite_differences(seed):
    _random.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = mnist_convnet()
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    # nudge biases away from zero so every weight matters
    model.set_weights(
        [w if w.ndim > 1 else rng.uniform(-0.05, 0.05, w.shape) for w in model.get_weights()]
    )
    x = rng.random((3, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, 3)
    loss, _ = model._compute_gradients(x, model._loss.prepare_targets(labels, (3, 10)))
    grads = [g for _, g in model._trainable_weights_and_grads()]
    ws = [w.astype(np.float64) for w in model.get_weights()]
    xd = x.astype(np.float64)
    np.testing.assert_allclose(loss, _ref_forward(ws, xd, labels), rtol=1e-5)
    # tiny steps: a random direction moves every pre-activation, and with ~10^5 units a step of
    # 1e-6 often crosses some ReLU kink; float64 keeps the difference quotient accurate anyway
    eps = 1e-8
    for i, g in enumerate(grads):
        assert g.shape == ws[i].shape and g.dtype == np.float32
        scale = np.abs(g).max()
        assert scale > 0
        # directional derivative along random directions (covers every entry); directions whose
        # step crosses a ReLU or max-pool kink are redrawn (the loss is not smooth there)
        checked = 0
        for _ in range(10):
            d = rng.standard_normal(ws[i].shape)
            num = _central_difference(ws, i, eps * d, xd, labels)
            if num is not None:
                np.testing.assert_allclose(np.sum(g * d), num / eps, rtol=1e-3, atol=1e-5 * scale)
                checked += 1
                if checked == 2:
                    break
        assert checked == 2
        # and single entries, including the largest gradient
        for fi in [int(np.argmax(np.abs(g)))] + list(rng.integers(0, g.size, 3)):
            idx = np.unravel_index(fi, g.shape)
            delta = np.zeros_like(ws[i])
            delta[idx] = eps
            num = _central_difference(ws, i, delta, xd, labels)
            if num is not None:
                assert abs(g[idx] - num / eps) <= 1e-3 * abs(num / eps) + 1e-4 * scale, (i, idx)


def _twin_models(build):
    """The model `build()` makes, twice with the same weights: fused (the default) and with
    fusion switched off (`model.fuse = False`)."""
    fused, unfused = build(), build()
    unfused.fuse = False
    unfused.set_weights(fused.get_weights())
    for model in (fused, unfused):
        model.compile("rmsprop", "sparse_categorical_crossentropy")
    return fused, unfused


def _gradients(model, x, targets):
    model._compute_gradients(x, targets)
    return [g.copy() for _, g in model._trainable_weights_and_grads()]


def _count_calls(monkeypatch, name):
    """Count the calls of fastconv.ops.<name> (which still runs)."""
    calls, op = [], getattr(ops, name)
    monkeypatch.setattr(ops, name, lambda *a, **k: calls.append(1) or op(*a, **k))
    return calls


def _assert_same_gradients(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * np.abs(w).max())


@pytest.mark.parametrize("first", ["conv", "rescaling"])
def test_first_layer_weight_gradient_through_pooling_is_the_unfused_one(
    rng, monkeypatch, eager_threads, first
):
    """The first ReLU conv under a tiling max pooling takes its weight gradient straight from the
    pooling's (the cats-vs-dogs model has a Rescaling in front); the result is the chain it
    replaces, and a conv that needs its input gradient keeps that chain."""

    def build():
        _random.set_random_seed(3)
        stack = [Input((15, 14, 3))]
        stack += [layers.Rescaling(1 / 255)] if first == "rescaling" else []
        stack += [
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
        return Sequential(stack)

    model, unfused = _twin_models(build)
    x = rng.random((5, 15, 14, 3)).astype(np.float32) * 255
    targets = model._loss.prepare_targets(rng.integers(0, 3, 5), (5, 3))
    calls = _count_calls(monkeypatch, "conv2d_max_pool_weight_grad_from_argmax")
    got = _gradients(model, x, targets)
    assert len(calls) == 1  # the first conv only: the second needs its input gradient
    want = _gradients(unfused, x, targets)
    assert len(calls) == 1  # fusion off: the two passes
    _assert_same_gradients(got, want)


@pytest.mark.parametrize("activation, use_bias", [("relu", True), ("linear", False)])
def test_first_conv_and_pooling_forward_in_one_pass_is_the_two_passes(
    rng, monkeypatch, eager_threads, activation, use_bias
):
    """Model.forward runs each conv and its max pooling as one op; predictions and the gradients
    equal the layer-by-layer ones (a linear conv's backward too, from its argmax tape)."""

    def build():
        _random.set_random_seed(4)
        return Sequential(
            [
                Input((16, 15, 3)),
                layers.Rescaling(1 / 255),
                layers.Conv2D(8, 3, activation=activation, use_bias=use_bias),
                layers.MaxPooling2D(2),
                layers.Conv2D(4, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(2, activation="softmax"),
            ]
        )

    model, unfused = _twin_models(build)
    x = rng.random((3, 16, 15, 3)).astype(np.float32) * 255
    targets = model._loss.prepare_targets(rng.integers(0, 2, 3), (3, 2))
    calls = _count_calls(monkeypatch, "conv2d_max_pool")
    fused = model.forward(x, training=True)
    assert len(calls) == 2  # each conv and its pooling in one op
    inference = model.predict_on_batch(x)
    with pytest.raises(RuntimeError, match="forward"):  # predict keeps no tape for backward
        model.backward(np.ones_like(inference), need_dx=False)
    model.forward(x, training=False)  # forward keeps it, training or not
    model.backward(np.ones_like(inference), need_dx=False)
    fused_grads = _gradients(model, x, targets)
    calls.clear()
    plain = unfused.forward(x, training=True)
    assert not calls  # fusion off: the two passes
    np.testing.assert_array_equal(fused, plain)
    np.testing.assert_array_equal(inference, plain)
    np.testing.assert_array_equal(inference, unfused.predict_on_batch(x))
    _assert_same_gradients(fused_grads, _gradients(unfused, x, targets))
