"""The execution plan: which steps it makes, and that fused and unfused plans give the same
predictions, losses, gradients and trained weights."""

from __future__ import annotations

import fastconv as keras
import numpy as np
import pytest
from fastconv import layers
from fastconv.applications import cats_vs_dogs_convnet, mnist_convnet
from fastconv.models.plan import ExecutionPlan


def _grads(model):
    return [np.array(g, copy=True) for _, g in model._trainable_weights_and_grads()]


def _twin(build, seed=0):
    """Two models with the same weights; the second runs every layer alone."""
    keras.set_random_seed(seed)
    fused = build()
    plain = build()
    plain.set_weights(fused.get_weights())
    plain.fuse = False
    return fused, plain


def test_lecture_mnist_plan_steps():
    keras.clear_session()
    model = mnist_convnet()
    assert model._execution_plan().describe() == [
        "ConvMaxPoolStep(conv2d, max_pooling2d)",
        "ConvMaxPoolStep(conv2d_1, max_pooling2d_1)",
        "LayerStep(conv2d_2)",
        "LayerStep(flatten)",
        "LayerStep(dense)",
    ]
    model.fuse = False
    assert all(s.startswith("LayerStep(") for s in model._execution_plan().describe())
    assert len(model._execution_plan().steps) == 7


def test_fusion_rules():
    """Conv+pool fuses only for linear or ReLU convolutions under non-overlapping unpadded
    windows; pool-through-ReLU needs a ReLU producer and max (not average) pooling."""
    inputs = keras.Input((12, 12, 5))
    a = layers.Conv2D(4, 3, activation="relu", name="wide")(inputs)  # 5 channels: conv+pool too
    a = layers.MaxPooling2D(2, name="p1")(a)
    b = layers.Conv2D(4, 3, activation="sigmoid", padding="same", name="sigmoid")(a)
    b = layers.MaxPooling2D(2, name="p2")(b)  # sigmoid: no ReLU to fold
    c = layers.Conv2D(3, 1, activation="relu", name="relu")(b)
    c = layers.AveragePooling2D(1, name="p3")(c)  # average pooling: no fold
    d = layers.Conv2D(2, 1, activation="relu", name="few")(c)  # 3 channels in
    d = layers.MaxPooling2D(1, strides=1, padding="same", name="p4")(d)  # padded: no conv+pool
    model = keras.Model(inputs, d)
    assert model._execution_plan().describe() == [
        "ConvMaxPoolStep(wide, p1)",
        "LayerStep(sigmoid)",
        "LayerStep(p2)",
        "LayerStep(relu)",
        "LayerStep(p3)",
        "ActivationMaxPoolStep(few, p4)",
    ]


def test_plan_is_rebuilt_when_the_graph_or_fuse_changes():
    keras.clear_session()
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu")])
    first = model._execution_plan()
    assert model._execution_plan() is first
    model.add(layers.MaxPooling2D(2))
    assert model._execution_plan().describe() == ["ConvMaxPoolStep(conv2d, max_pooling2d)"]
    model.fuse = False
    assert len(model._execution_plan().steps) == 2
    with pytest.raises(TypeError, match="fuse"):
        model.fuse = "no"


@pytest.mark.parametrize("build", [mnist_convnet, cats_vs_dogs_convnet], ids=["mnist", "cats"])
def test_fused_and_unfused_lecture_models_agree(build, rng):
    fused, plain = _twin(build)
    shape = fused.input_shape[1:]
    x = (rng.random((3,) + shape) * (255 if shape[-1] == 3 else 1)).astype(np.float32)
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), 1e-5)
    loss = (
        "binary_crossentropy" if fused.output_shape[-1] == 1 else "sparse_categorical_crossentropy"
    )
    y = rng.integers(0, 2, 3)
    for model in (fused, plain):
        model.compile("rmsprop", loss)
    losses = [
        m._compute_gradients(x, m._loss.prepare_targets(y, (3,) + m.output_shape[1:]))[0]
        for m in (fused, plain)
    ]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for gf, gp in zip(_grads(fused), _grads(plain)):
        np.testing.assert_allclose(gf, gp, rtol=1e-4, atol=1e-6 * np.abs(gp).max())


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("trainable_first", [True, False])
def test_fused_and_unfused_training_agree(activation, trainable_first, rng):
    """A few fit steps of a small convnet: weights stay equal, fused or not, for a first conv
    that is the first trainable layer (weight gradient through the pool) or that needs an input
    gradient (a trainable layer before it)."""

    def build():
        inputs = keras.Input((14, 13, 2))
        x = layers.Dense(2, activation="relu", trainable=trainable_first)(inputs)
        x = layers.Conv2D(6, 3, activation=activation)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(5, 3, activation="relu", padding="same")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
        return model

    fused, plain = _twin(build, seed=3)
    assert fused._execution_plan().describe()[1].startswith("ConvMaxPoolStep")
    x = rng.standard_normal((16, 14, 13, 2)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    h_fused = fused.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h_plain = plain.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_fused["loss"], h_plain["loss"], rtol=1e-5)
    for wf, wp in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(wf, wp, rtol=1e-4, atol=1e-5)


def test_backward_after_predict_is_a_clear_error(rng):
    model = mnist_convnet()
    x = rng.random((2, 28, 28, 1)).astype(np.float32)
    out = model.predict_on_batch(x)  # inference keeps no conv output for the fused first layer
    with pytest.raises(RuntimeError, match="run forward first"):
        model.backward(np.ones_like(out), need_dx=False)
    model.forward(x, training=False)  # forward keeps it, training or not
    assert model.backward(np.ones_like(out), need_dx=False) is None


def test_input_gradient_through_fused_plan_matches_unfused(rng):
    fused, plain = _twin(mnist_convnet, seed=5)
    x = rng.random((2, 28, 28, 1)).astype(np.float32)
    dy = rng.standard_normal((2, 10)).astype(np.float32)
    dx = []
    for model in (fused, plain):
        model.forward(x, training=True)
        dx.append(model.backward(dy, need_dx=True))
    np.testing.assert_allclose(dx[0], dx[1], rtol=1e-4, atol=1e-7)


def test_nested_model_runs_its_own_plan(rng):
    """A Sequential used as a layer is one step of the outer plan; its own plan fuses inside."""
    keras.clear_session()
    inner = keras.Sequential(
        [keras.Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2)]
    )
    inputs = keras.Input((10, 10, 1))
    outputs = layers.Dense(2, activation="softmax")(layers.Flatten()(inner(inputs)))
    model = keras.Model(inputs, outputs)
    assert model._execution_plan().describe()[0] == f"LayerStep({inner.name})"
    assert inner._execution_plan().describe() == ["ConvMaxPoolStep(conv2d, max_pooling2d)"]
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = rng.random((4, 10, 10, 1)).astype(np.float32)
    before = inner.get_weights()
    model.train_on_batch(x, np.array([0, 1, 0, 1]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, inner.get_weights()))


def test_empty_plan():
    plan = ExecutionPlan([])
    assert plan.describe() == [] and plan.output_activation is None
    x = np.ones((1, 2), np.float32)
    assert plan.forward(x) is x


def _mixed_convnet():
    """Bound inference calls (convs, conv+pool on few and many channels, flatten) between
    layers the runner calls through ``forward`` (sigmoid conv, dropout, average pooling, flip)."""
    inputs = keras.Input((17, 16, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(6, 3, activation="relu")(x)  # few channels in: the fused first layer
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(8, 3, activation="sigmoid", padding="same")(x)
    x = layers.Conv2D(7, 3)(x)  # linear, 8 channels in: conv+pool, two passes or Winograd
    x = layers.MaxPooling2D(2)(x)
    x = layers.RandomFlip("horizontal")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv2D(5, 2, strides=2, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(1)(x)
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(4, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _through_steps(model, x, batch):
    """Predictions through the plan's steps one by one (a forward that keeps its tape)."""
    return np.concatenate(
        [model.forward(x[i : i + batch], training=False) for i in range(0, len(x), batch)]
    )


@pytest.mark.parametrize("fuse", [True, False])
def test_bound_inference_equals_the_steps(fuse, rng):
    """predict and evaluate run bound calls (``Layer.inference_call``): the same predictions
    and loss as the steps' forward, for a full and a last partial batch, and after the weights
    change (set_weights, in place, or a float64 array put in a layer's place)."""
    keras.set_random_seed(7)
    model = _mixed_convnet()
    model.fuse = fuse
    x = (rng.random((12, 17, 16, 3)) * 255).astype(np.float32)
    y = rng.integers(0, 4, 12)
    for _ in range(2):  # the second round takes the calls bound in the first
        check = _through_steps(model, x, 5)
        np.testing.assert_allclose(model.predict(x, batch_size=5, verbose=0), check, 1e-6, 1e-7)
    plan = model._execution_plan()
    assert set(plan._runners) == {(5, 17, 16, 3), (2, 17, 16, 3)}
    calls = plan._runners[(5, 17, 16, 3)]
    bound = [c for c in calls if not getattr(c, "unbound", False)]
    assert len(calls) == len(plan.steps)
    # rescaling, the relu and linear convs (+pool), the strided conv, flatten, dense
    assert len(bound) == 6 and not plan.all_bound((5, 17, 16, 3))
    loss = model.evaluate(x, y, batch_size=12, verbose=0)
    probs = _through_steps(model, x, 12)
    np.testing.assert_allclose(loss, -np.log(probs[np.arange(12), y]).mean(), rtol=1e-5)

    model.set_weights([w * 0.5 + 0.01 for w in model.get_weights()])
    first_conv = model.layers[2]
    first_conv.kernel[:, :, 0, :] *= -1.0  # in place
    model.layers[5].kernel = model.layers[5].kernel.astype(np.float64)  # a new array
    check = _through_steps(model, x, 5)
    np.testing.assert_allclose(model.predict(x, batch_size=5, verbose=0), check, 1e-6, 1e-7)


def test_predict_drops_the_tapes_of_a_training_forward(rng):
    model = mnist_convnet()
    x = rng.random((3, 28, 28, 1)).astype(np.float32)
    model.forward(x, training=True)
    conv = model.layers[1]
    assert model._execution_plan().has_tape
    model.predict_on_batch(x)
    assert not model._execution_plan().has_tape and conv._x is None
    with pytest.raises(RuntimeError, match="run forward first"):
        model.backward(np.ones((3, 10), np.float32), need_dx=False)


def test_bound_inference_keeps_a_few_shapes(rng):
    model = mnist_convnet()
    for n in range(1, 9):
        model.predict_on_batch(rng.random((n, 28, 28, 1)).astype(np.float32))
    assert 1 <= len(model._execution_plan()._runners) <= ExecutionPlan._RUNNERS_KEPT


def test_bound_inference_follows_layer_changes_and_user_layers(rng):
    """A bound call runs the plain path when its layer's settings changed since it was bound;
    a Conv2D subclass with its own forward, and a user layer passing float64 or a view, keep
    working as through the steps."""

    class Float64Strided(layers.Layer):
        def call(self, inputs, training=False):
            return np.asarray(inputs, np.float64)[:, ::-1]  # a float64 view, not contiguous

    class Doubled(layers.Conv2D):
        def forward(self, x, training=False):
            return 2.0 * super().forward(x, training=training)

    keras.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((12, 11, 2)),
            Float64Strided(),
            layers.Conv2D(6, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(5, 3, activation="relu", padding="same"),
            Doubled(4, 2),
            layers.Flatten(),
            layers.Dense(3),
        ]
    )
    x = rng.standard_normal((6, 12, 11, 2)).astype(np.float32)
    for change in (False, True):
        if change:
            model.layers[1].activation = "linear"  # inside the conv+pool step
            model.layers[3].activation = "linear"
        expected = _through_steps(model, x, 3)
        np.testing.assert_allclose(model.predict(x, batch_size=3, verbose=0), expected, 1e-6, 1e-6)


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_predict_batch_begin(self, batch, logs=None):
        self.events.append(("begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        self.events.append(("end", batch, np.array(logs["outputs"], copy=True)))


def _spy_on_batches(monkeypatch, model):
    """(thread name, kernel thread count) of each predict_batch call of the model's plan."""
    import threading

    from fastconv import _core

    plan, seen = model._execution_plan(), []
    real = plan.predict_batch

    def spy(x):
        seen.append((threading.current_thread().name, _core.get_num_threads()))
        return real(x)

    monkeypatch.setattr(plan, "predict_batch", spy)
    return seen


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_predict_in_teams_equals_one_batch_at_a_time(threads, rng, monkeypatch, restore_threads):
    """With 2+ threads, predict on arrays runs two batches at once on teams of threads once
    every step is bound and the pair's shape has run alone with a team's threads: the same
    predictions, and the callbacks see each pair's begins then its ends with that batch's
    outputs; the kernels' thread count is the process setting again afterwards."""
    from fastconv import _core
    from fastconv.models import batch_teams

    x = rng.random((7 * 4 + 3, 28, 28, 1)).astype(np.float32)  # 7 full batches of 4, one of 3
    keras.set_num_threads(threads)
    runs = {}
    for teams in (1, 2):
        monkeypatch.setattr(batch_teams, "MAX_TEAMS", teams)
        keras.set_random_seed(3)
        model = mnist_convnet()  # a fresh plan: nothing bound yet
        seen = _spy_on_batches(monkeypatch, model)
        recorder = _Recorder()
        y = model.predict(x, batch_size=4, verbose=0, callbacks=[recorder])
        runs[teams] = (y, recorder.events, seen)
        assert _core.get_num_threads() == threads
    np.testing.assert_allclose(runs[2][0], runs[1][0], rtol=1e-6, atol=1e-7)
    one, two, seen = runs[1][1], runs[2][1], runs[2][2]
    assert [e[:2] for e in one] == [(k, b) for b in range(8) for k in ("begin", "end")]
    if threads == 1:
        assert [e[:2] for e in two] == [e[:2] for e in one]
        assert all(name == "MainThread" for name, _ in seen)
        return
    # b0 binds alone; (1, 2) run alone with a team's threads; (3, 4), (5, 6) at once; b7 (a
    # new shape) binds alone
    pairs = [(k, b) for p in (1, 3, 5) for k in ("begin", "end") for b in (p, p + 1)]
    assert [e[:2] for e in two] == [("begin", 0), ("end", 0), *pairs, ("begin", 7), ("end", 7)]
    per_team = threads // 2
    assert [t for name, t in seen if name.startswith("fastconv-team")] == [per_team, per_team]
    main = [threads, per_team, per_team, per_team, per_team, threads]  # b7: a new shape
    assert [t for name, t in seen if name == "MainThread"] == main
    ends = {e[1]: e[2] for e in two if e[0] == "end"}
    for b in range(8):
        np.testing.assert_allclose(ends[b], runs[1][0][4 * b : 4 * b + 4], 1e-6, 1e-7)
    seen.clear()  # a second predict: full batches bound and ready, their pairs at once; the
    # last pair holds the partial batch's shape, new to teams: it runs alone once
    again = model.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(again, runs[2][0], rtol=1e-6, atol=1e-7)
    in_team = [name.startswith("fastconv-team") for name, _ in seen]
    assert in_team == [False, True] * 3 + [False, False]


@pytest.mark.parametrize("algorithm", ["auto", "deterministic"])
def test_teams_give_every_batch_the_same_bits(algorithm, rng, monkeypatch, restore_threads):
    """Identical batches give identical bits whichever team runs them: the teams' algorithms
    were chosen once, by the pair that ran alone with a team's threads. (The first batch binds
    the shape, and a lone last batch runs, with all the threads: under "auto" their algorithms
    may differ; "deterministic" gives every batch the same bits.)"""
    from fastconv.models import batch_teams

    keras.set_num_threads(2)
    monkeypatch.setattr(batch_teams, "MAX_TEAMS", 2)
    model = mnist_convnet()
    seen = _spy_on_batches(monkeypatch, model)
    x = np.tile(rng.random((8, 28, 28, 1)).astype(np.float32), (10, 1, 1, 1))
    previous = keras.get_conv_algorithm()
    keras.set_conv_algorithm(algorithm)
    try:
        y = model.predict(x, batch_size=8, verbose=0).reshape(10, 8, 10)
    finally:
        keras.set_conv_algorithm(previous)
    assert any(name.startswith("fastconv-team") for name, _ in seen)
    # under auto, batch 0 (binding) and batch 9 (alone, last) run with both threads
    batches = range(10) if algorithm == "deterministic" else range(1, 9)
    for b in batches:
        assert np.array_equal(y[b], y[batches[0]]), f"batch {b}"


def test_predict_in_teams_reports_a_teams_error(rng, monkeypatch, restore_threads):
    """An exception in the other team's batch reaches the caller; the thread count is the
    process setting again."""
    import threading

    from fastconv import _core
    from fastconv.models import batch_teams

    keras.set_num_threads(2)
    monkeypatch.setattr(batch_teams, "MAX_TEAMS", 2)
    model = mnist_convnet()
    plan = model._execution_plan()
    real = plan.predict_batch

    def failing_in_team(x):
        if threading.current_thread().name.startswith("fastconv-team"):
            raise ArithmeticError("boom")
        return real(x)

    monkeypatch.setattr(plan, "predict_batch", failing_in_team)
    x = rng.random((40, 28, 28, 1)).astype(np.float32)
    with pytest.raises(ArithmeticError, match="boom"):
        model.predict(x, batch_size=4, verbose=0)
    assert _core.get_num_threads() == 2


def test_thread_num_threads_is_per_thread(restore_threads):
    import threading

    from fastconv import _core

    keras.set_num_threads(2)
    seen = []

    def in_thread():
        _core.set_thread_num_threads(1)
        seen.append(_core.get_num_threads())

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert seen == [1] and _core.get_num_threads() == 2
    for bad in (-1, 10**6):
        with pytest.raises(ValueError, match="thread_num_threads"):
            _core.set_thread_num_threads(bad)
