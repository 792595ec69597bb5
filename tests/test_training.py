"""Training: optimizers, losses (fused vs not), gradients vs finite differences, fit/evaluate,
callbacks, validation, data sets, input errors, NaN, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from fastconv import _random, callbacks, layers, losses, metrics, optimizers
from fastconv._tensor import Input
from fastconv.models import Model, Sequential
from lecture_models import lecture_model
from numpy.lib.stride_tricks import sliding_window_view

# --------------------------------------------------------------------------- helpers


def toy_data(rng, n=96, size=6):
    """Two separable classes of small images: bright left half vs bright right half."""
    x = rng.random((n, size, size, 1)).astype(np.float32) * 0.5
    y = rng.integers(0, 2, n)
    half = size // 2
    x[y == 0, :, :half] += 0.5
    x[y == 1, :, half:] += 0.5
    return x, y


def small_model(out="softmax", units=2):
    inputs = Input(shape=(6, 6, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    return Model(inputs, layers.Dense(units, activation=out)(x))


def compiled_small(metrics_=("accuracy",), optimizer="adam", seed=0):
    _random.set_random_seed(seed)
    m = small_model()
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics_))
    return m


# --------------------------------------------------------------------------- optimizers
def _keras_reference(kind, w, grads, **kw):
    """Keras 3 update rules in float64."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if kind == "sgd":
            lr, mom, nest = (
                kw.get("learning_rate", 0.01),
                kw.get("momentum", 0.0),
                kw.get("nesterov", False),
            )
            if mom == 0:
                w = w - lr * g
            else:
                m = mom * m - lr * g
                w = w + (mom * m - lr * g if nest else m)
        elif kind == "rmsprop":
            lr, rho, eps = kw.get("learning_rate", 0.001), kw.get("rho", 0.9), 1e-7
            v = rho * v + (1 - rho) * g * g
            w = w - lr * g / np.sqrt(v + eps)
        elif kind == "adam":
            lr, b1, b2, eps = kw.get("learning_rate", 0.001), 0.9, 0.999, 1e-7
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            m = m + (g - m) * (1 - b1)
            v = v + (g * g - v) * (1 - b2)
            w = w - alpha * m / (np.sqrt(v) + eps)
    return w


@pytest.mark.parametrize(
    "kind, cls, kw",
    [
        ("sgd", optimizers.SGD, {}),
        ("sgd", optimizers.SGD, {"learning_rate": 0.05, "momentum": 0.9}),
        ("sgd", optimizers.SGD, {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
        ("rmsprop", optimizers.RMSprop, {}),
        ("rmsprop", optimizers.RMSprop, {"learning_rate": 0.01, "rho": 0.8}),
        ("adam", optimizers.Adam, {}),
        ("adam", optimizers.Adam, {"learning_rate": 0.02}),
    ],
)
def test_optimizer_updates_match_keras_formulas(kind, cls, kw, rng):
    w0 = rng.standard_normal((7, 5)).astype(np.float32)
    grads = [rng.standard_normal((7, 5)).astype(np.float32) for _ in range(6)]
    opt = cls(**kw)
    w = w0.copy()
    for g in grads:
        opt.apply([g], [w])
    want = _keras_reference(kind, w0, grads, **kw)
    np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-6)
    assert opt.iterations == 6
    assert not np.allclose(w, w0)


def test_optimizer_defaults_and_names():
    assert optimizers.get("rmsprop").get_config()["learning_rate"] == 0.001
    assert optimizers.get("rmsprop").rho == 0.9
    assert optimizers.get("adam").beta_2 == 0.999
    assert optimizers.get("sgd").learning_rate == 0.01
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.get("adagrad-ish")


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
    model = lecture_model()
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


@pytest.mark.parametrize("first", ["conv", "rescaling"])
def test_first_layer_weight_gradient_through_pooling_is_the_unfused_one(
    rng, monkeypatch, eager_threads, first
):
    """The first ReLU conv under a tiling max pooling takes its weight gradient straight from the
    pooling's (the cats-vs-dogs model has a Rescaling in front); the result is the chain it
    replaces, and a conv that needs its input gradient keeps that chain."""
    from fastconv import ops
    from fastconv.layers.convolutional import Conv2D

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
    model = Sequential(stack)
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    x = rng.random((5, 15, 14, 3)).astype(np.float32) * 255
    targets = model._loss.prepare_targets(rng.integers(0, 3, 5), (5, 3))
    calls = []
    fused = ops.conv2d_relu_max_pool_weight_grad
    monkeypatch.setattr(
        ops, "conv2d_relu_max_pool_weight_grad", lambda *a, **k: calls.append(1) or fused(*a, **k)
    )
    model._compute_gradients(x, targets)
    got = [g.copy() for _, g in model._trainable_weights_and_grads()]
    assert len(calls) == 1  # the first conv only: the second needs its input gradient
    monkeypatch.setattr(Conv2D, "takes_max_pool_grad", lambda self, pool: False)
    model._compute_gradients(x, targets)
    want = [g for _, g in model._trainable_weights_and_grads()]
    assert len(calls) == 1
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * np.abs(w).max())


@pytest.mark.parametrize("activation, use_bias", [("relu", True), ("linear", False)])
def test_first_conv_and_pooling_forward_in_one_pass_is_the_two_passes(
    rng, monkeypatch, eager_threads, activation, use_bias
):
    """Model.forward runs an image's first conv and its max pooling as one op; predictions and
    the activations kept for the backward pass equal the layer-by-layer ones, and so do the
    gradients (a linear conv's backward goes through the pooling layer's own)."""
    from fastconv.layers.convolutional import Conv2D

    _random.set_random_seed(4)
    model = Sequential(
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
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    x = rng.random((3, 16, 15, 3)).astype(np.float32) * 255
    targets = model._loss.prepare_targets(rng.integers(0, 2, 3), (3, 2))
    conv, pool = model.layers[1], model.layers[2]
    fused = model.forward(x, training=True)
    kept = conv._y.copy()
    assert pool._x is conv._y
    inference = model.predict_on_batch(x)
    assert conv._y is None and pool._x is None  # predict keeps no activation for backward
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.ones_like(inference), need_dx=False)
    model.forward(x, training=False)  # forward keeps them, training or not
    model.backward(np.ones_like(inference), need_dx=False)
    model._compute_gradients(x, targets)
    fused_grads = [g.copy() for _, g in model._trainable_weights_and_grads()]
    monkeypatch.setattr(Conv2D, "takes_max_pool", lambda self, pool, x: False)
    plain = model.forward(x, training=True)
    np.testing.assert_array_equal(fused, plain)
    np.testing.assert_array_equal(inference, plain)
    np.testing.assert_array_equal(kept, conv._y)
    model._compute_gradients(x, targets)
    for g, w in zip(fused_grads, [g for _, g in model._trainable_weights_and_grads()]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * np.abs(w).max())


# --------------------------------------------------------------------------- fit / evaluate
def test_training_reduces_loss_on_separable_problem(rng):
    x, y = toy_data(rng)
    model = compiled_small(optimizer=optimizers.Adam(0.01))
    before = model.evaluate(x, y, verbose=0)[0]
    hist = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    after, acc = model.evaluate(x, y, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert after < 0.5 * before
    assert acc >= 0.9


def test_fit_history_keys_and_validation_split(rng):
    x, y = toy_data(rng, n=50)
    model = compiled_small()
    hist = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2] and model.history is hist
    # the last 20% (10 samples) is the validation set, evaluated with the final weights
    val_loss, val_acc = model.evaluate(x[40:], y[40:], verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"][-1], val_loss, rtol=1e-6)
    np.testing.assert_allclose(hist.history["val_accuracy"][-1], val_acc)
    res = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(res) == {"loss", "accuracy"}


def test_epoch_metrics_are_sample_weighted_running_means(rng):
    x, y = toy_data(rng, n=20)
    model = compiled_small(optimizer=optimizers.SGD(learning_rate=0.0))  # weights never change
    hist = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)  # 8 + 8 + 4
    per_batch = [model.test_on_batch(x[a:b], y[a:b]) for a, b in ((0, 8), (8, 16), (16, 20))]
    want_loss = (8 * per_batch[0][0] + 8 * per_batch[1][0] + 4 * per_batch[2][0]) / 20
    np.testing.assert_allclose(hist.history["loss"][0], want_loss, rtol=1e-5)
    pred = model.predict(x, verbose=0).argmax(1)
    np.testing.assert_allclose(hist.history["accuracy"][0], np.mean(pred == y))
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0)[0], want_loss, 1e-5)


def test_evaluate_loss_alone_and_on_batch_methods(rng):
    x, y = toy_data(rng, n=12)
    model = small_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    before = model.get_weights()
    loss = model.train_on_batch(x, y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    out = model.test_on_batch(x, y)
    assert len(out) == 2 and 0 <= out[1] <= 1


def test_categorical_and_binary_models_train(rng):
    x, y = toy_data(rng, n=64)
    _random.set_random_seed(1)
    m = small_model()
    m.compile(optimizers.Adam(0.01), "categorical_crossentropy", ["accuracy"])
    h = m.fit(x, np.eye(2)[y], epochs=4, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert isinstance(m._metrics[0]._impl, metrics.CategoricalAccuracy)
    b = small_model(out="sigmoid", units=1)
    b.compile(optimizers.Adam(0.01), "binary_crossentropy", ["accuracy"])
    assert b._fused()
    h = b.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert isinstance(b._metrics[0]._impl, metrics.BinaryAccuracy)
    acc = metrics.BinaryAccuracy()
    acc.update_state(np.array([1, 0, 1, 0]), np.array([[0.7], [0.2], [0.4], [0.6]]))
    assert acc.result() == 0.5


def test_verbose_modes(rng, capsys):
    x, y = toy_data(rng, n=16)
    model = compiled_small()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "loss:" in out and "accuracy:" in out and "/step" in out
    model.fit(x, y, epochs=1, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    assert "2/2" in out and "loss:" in out
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)


# --------------------------------------------------------------------------- callbacks
def test_model_checkpoint_best_only(tmp_path, rng):
    model = compiled_small()
    model.fit(*toy_data(rng, n=8), epochs=1, verbose=0)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "m_{epoch:02d}.keras"), save_best_only=True)
    cb.set_model(model)
    for epoch, val in enumerate([1.0, 2.0, 0.5, 0.7]):
        cb.on_epoch_end(epoch, {"loss": 0.0, "val_loss": val})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_01.keras", "m_03.keras"]
    acc = callbacks.ModelCheckpoint(
        str(tmp_path / "a.keras"), monitor="val_accuracy", save_best_only=True
    )
    assert acc.monitor_op is np.greater


def test_model_checkpoint_every_epoch_in_fit(tmp_path, rng):
    x, y = toy_data(rng, n=20)
    model = compiled_small()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch}-{loss:.3f}.keras"))
    model.fit(x, y, epochs=2, batch_size=10, validation_data=(x, y), callbacks=[cb], verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].startswith("ep1-") and names[1].startswith("ep2-")


def test_early_stopping_restores_best_weights(rng):
    model = compiled_small()
    model.fit(*toy_data(rng, n=8), epochs=1, verbose=0)
    es = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    es.set_model(model)
    es.on_train_begin()
    snapshots = []
    for epoch, val in enumerate([1.0, 0.5, 0.8, 0.9]):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        snapshots.append(model.get_weights())
        es.on_epoch_end(epoch, {"val_loss": val})
        if model.stop_training:
            break
    assert model.stop_training and es.stopped_epoch == 2 and es.best_epoch == 1
    es.on_train_end()  # Keras 3 restores at the end of training
    for w in model.get_weights():
        assert np.all(w == 1.0)


def test_early_stopping_stops_fit(rng):
    x, y = toy_data(rng, n=16)
    model = compiled_small(optimizer=optimizers.SGD(learning_rate=0.0))  # loss never improves
    es = callbacks.EarlyStopping(monitor="loss", patience=1)
    hist = model.fit(x, y, epochs=10, batch_size=8, callbacks=[es], verbose=0)
    assert len(hist.history["loss"]) == 2


def test_callback_hooks_order_and_stop_training(rng):
    x, y = toy_data(rng, n=16)
    events = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            events.append(f"epoch_begin{epoch}")

        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch{batch}")
            assert "loss" in logs

        def on_test_begin(self, logs=None):
            events.append("test")

        def on_epoch_end(self, epoch, logs=None):
            events.append(f"epoch_end{epoch}")
            assert "val_loss" in logs
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            events.append("train_end")

    model = compiled_small()
    hist = model.fit(
        x, y, epochs=5, batch_size=8, validation_data=(x, y), callbacks=[Recorder()], verbose=0
    )
    assert len(hist.history["loss"]) == 2
    assert events == [
        "train_begin",
        "epoch_begin0",
        "batch0",
        "batch1",
        "test",
        "epoch_end0",
        "epoch_begin1",
        "batch0",
        "batch1",
        "test",
        "epoch_end1",
        "train_end",
    ]


# --------------------------------------------------------------------------- data sets
class BatchDataset:
    """Like image_dataset_from_directory's result: __iter__ + __len__ over (x, y) batches."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.bs = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __iter__(self):
        for i in range(0, len(self.x), self.bs):
            yield self.x[i : i + self.bs], self.y[i : i + self.bs]


def test_fit_on_dataset_iterable_and_generator(rng):
    x, y = toy_data(rng, n=40)
    ds = BatchDataset(x, y, 8)
    model = compiled_small(seed=5)
    hist = model.fit(ds, epochs=2, validation_data=BatchDataset(x, y, 16), verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_allclose(
        hist.history["val_loss"][-1], model.evaluate(x, y, verbose=0)[0], rtol=1e-5
    )
    # same data as arrays without shuffling gives the same weights
    ref = compiled_small(seed=5)
    ref.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a generator without len: steps_per_epoch bounds each epoch
    gen = ((x[i % 5 * 8 : i % 5 * 8 + 8], y[i % 5 * 8 : i % 5 * 8 + 8]) for i in range(100))
    hist = model.fit(gen, epochs=3, steps_per_epoch=4, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert np.isfinite(model.evaluate(ds, verbose=0)[0])
    with pytest.raises(ValueError, match="`y` must not be given"):
        model.fit(ds, y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(ds, validation_split=0.2, verbose=0)


def test_generator_exhaustion_warns_and_stops(rng):
    x, y = toy_data(rng, n=16)
    model = compiled_small()
    gen = ((x[i : i + 8], y[i : i + 8]) for i in range(0, 16, 8))
    with pytest.warns(UserWarning, match="ran out of data"):
        hist = model.fit(gen, epochs=3, verbose=1)
    assert len(hist.history["loss"]) == 1


def test_dataset_labels_are_validated(rng):
    x, y = toy_data(rng, n=16)
    model = compiled_small()
    with pytest.raises(ValueError, match="outside the valid range"):
        model.fit(BatchDataset(x, y + 5, 8), verbose=0)


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors(rng):
    model = lecture_model()
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    x = rng.random((4, 28, 28, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"expected shape=\(None, 28, 28, 1\), found shape="):
        model.fit(rng.random((4, 32, 32, 1)), y, verbose=0)
    with pytest.raises(ValueError, match="incompatible"):
        model.fit(rng.random((4, 28, 28)), y, verbose=0)
    with pytest.raises(ValueError, match="label value of 10 .*valid range of \\[0, 10\\)"):
        model.fit(x, np.array([0, 1, 2, 10]), verbose=0)
    with pytest.raises(ValueError, match="label value of -1"):
        model.evaluate(x, np.array([0, -1, 2, 3]), verbose=0)
    with pytest.raises(ValueError, match="'x' sizes: 4 'y' sizes: 3"):
        model.fit(x, y[:3], verbose=0)
    with pytest.raises(ValueError, match="integer"):
        model.fit(x, np.array([0.5, 1, 2, 3]), verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, np.zeros((4, 3), int), verbose=0)
    with pytest.raises(ValueError, match="compile"):
        lecture_model().fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    cat = lecture_model()
    cat.compile("rmsprop", "categorical_crossentropy")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        cat.fit(x, y, verbose=0)


def test_nan_data_gives_nan_loss(rng):
    x, y = toy_data(rng, n=16)
    x[3, 2, 2, 0] = np.nan
    model = compiled_small()
    hist = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isnan(hist.history["loss"][0])
    assert np.isnan(model.evaluate(x, y, verbose=0)[0])


# --------------------------------------------------------------------------- reproducibility
def test_set_random_seed_makes_training_reproducible(rng):
    x, y = toy_data(rng, n=32)

    def run(seed):
        _random.set_random_seed(seed)
        inputs = Input(shape=(6, 6, 1))
        h = layers.Flatten()(layers.Conv2D(3, 3, activation="relu")(inputs))
        h = layers.Dropout(0.3)(h)
        m = Model(inputs, layers.Dense(2, activation="softmax")(h))
        m.compile("rmsprop", "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, batch_size=8, verbose=0)  # shuffled, with dropout
        return m.get_weights()

    a, b, c = run(123), run(123), run(124)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c))
    try:
        from fastconv.utils import set_random_seed
    except ImportError:
        pytest.skip("fastconv.utils not available")
    assert set_random_seed is _random.set_random_seed


def test_sequential_fit_builds_lazily(rng):
    x, y = toy_data(rng, n=16)
    model = Sequential([layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert model.count_params() == 36 * 2 + 2 and len(hist.history["loss"]) == 1
