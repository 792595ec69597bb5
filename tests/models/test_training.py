"""Training a model: fit / evaluate and their history and metrics, data sets and generators,
bad inputs, NaN, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from fastconv import Input, _random, layers, metrics, optimizers
from fastconv.applications import mnist_convnet
from fastconv.models import Model, Sequential

from models.toy import compiled_small, small_model, toy_data


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
    assert b._loss_step().from_logits
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


def test_validation_data_as_a_list(rng):
    x, y = toy_data(rng, n=16)
    hist = compiled_small().fit(x, y, validation_data=[x, y], verbose=0)
    assert "val_loss" in hist.history


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
    model = mnist_convnet()
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    x = rng.random((4, 28, 28, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"expected shape=\(None, 28, 28, 1\), found shape="):
        model.fit(rng.random((4, 32, 32, 1)), y, verbose=0)
    with pytest.raises(ValueError, match="incompatible"):
        model.fit(rng.random((4, 28, 28)), y, verbose=0)
    with pytest.raises(ValueError, match="label value of 10 .*valid range of \\[0, 10\\)"):
        model.fit(x, np.array([0, 1, 2, 10]), verbose=0)
    for run in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match="label value of -1"):
            run(x, np.array([0, -1, 2, 3]), verbose=0)
    with pytest.raises(ValueError, match="cardinality.*'x' sizes: 4 'y' sizes: 3"):
        model.fit(x, y[:3], verbose=0)
    with pytest.raises(ValueError, match="numeric"):
        model.fit(np.full((4, 28, 28, 1), "a"), y, verbose=0)
    with pytest.raises(ValueError, match="incompatible"):
        model.predict(x[..., 0], verbose=0)
    with pytest.raises(ValueError, match="integer"):
        model.fit(x, np.array([0.5, 1, 2, 3]), verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, np.zeros((4, 3), int), verbose=0)
    with pytest.raises(ValueError, match="compile"):
        mnist_convnet().fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    cat = mnist_convnet()
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
