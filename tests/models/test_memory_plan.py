"""The memory plan: a model's steps reuse their large buffers (no new allocations, no page
faults once steps repeat), never hand out an array someone still holds, and give the same
numbers as freshly allocated outputs."""

from __future__ import annotations

import contextlib
import resource

import fastconv as keras
import numpy as np
import pytest
from fastconv import layers
from fastconv.ops import _buffers


def _model():
    """Activations and gradients of 0.5-4 MB per layer at batch 16 (the pooled convolutions keep
    only an argmax tape, not their outputs): all of them pooled."""
    keras.set_random_seed(7)
    inputs = keras.Input((48, 48, 3))
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(rng, n=16):
    return rng.random((n, 48, 48, 3)).astype(np.float32), rng.integers(0, 3, n)


def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_steady_steps_allocate_nothing_and_fault_no_pages(rng):
    model = _model()
    x, y = _data(rng)
    for _ in range(2):
        model.train_on_batch(x, y)
    allocations, held = model._buffers.allocations, model._buffers.nbytes
    assert allocations > 0 and held > 4 << 20
    before = _minor_faults()
    for _ in range(5):
        model.train_on_batch(x, y)
    faults = _minor_faults() - before
    assert model._buffers.allocations == allocations
    assert model._buffers.nbytes == held
    # Fresh outputs fault in the pages of every output glibc maps afresh, each step.
    assert faults < 0.01 * 5 * held / 4096, faults


def test_a_held_output_is_never_reused(rng):
    model = _model()
    x, _ = _data(rng)
    first = model.predict_on_batch(x)
    kept = first.copy()
    for _ in range(3):
        model.predict_on_batch(rng.random(x.shape).astype(np.float32))
    np.testing.assert_array_equal(first, kept)


def test_fit_returns_free_buffers_and_a_smaller_last_batch_reuses_them(rng):
    model = _model()
    x, y = _data(rng, n=20)  # batches of 8, 8 and 4
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model._buffers.nbytes == 0  # released when fit returns
    with model._buffers.active():
        pass
    counts = []
    for _ in range(3):
        model.train_on_batch(x[:8], y[:8])
        model.train_on_batch(x[16:], y[16:])
        counts.append(model._buffers.allocations)
    assert counts[1] == counts[2]  # both batch sizes found their buffers


def _without_pool(monkeypatch):
    monkeypatch.setattr(_buffers.BufferPool, "active", lambda self: contextlib.nullcontext())


@pytest.mark.parametrize("shuffle", [False])
def test_pooled_and_fresh_outputs_train_alike(rng, monkeypatch, shuffle):
    x, y = _data(rng, n=24)
    pooled = _model()
    h1 = pooled.fit(x, y, batch_size=8, epochs=2, shuffle=shuffle, verbose=0).history
    p1 = pooled.predict(x, batch_size=8, verbose=0)
    _without_pool(monkeypatch)
    fresh = _model()
    h2 = fresh.fit(x, y, batch_size=8, epochs=2, shuffle=shuffle, verbose=0).history
    assert fresh._buffers.allocations == 0
    np.testing.assert_array_equal(h1["loss"], h2["loss"])
    for a, b in zip(pooled.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, fresh.predict(x, batch_size=8, verbose=0))


def test_outputs_outside_a_model_are_not_pooled():
    pool = _buffers.BufferPool()
    a = _buffers.aligned_empty((512, 1024))
    assert a.ctypes.data % _buffers.ALIGN == 0 and pool.allocations == 0
    with pool.active():
        b = _buffers.aligned_empty((512, 1024))
        small = _buffers.aligned_empty((4, 4))
    assert pool.allocations == 1 and small.base is None
    assert pool.release_free() == 0  # `b` still uses its buffer
    del b
    assert pool.release_free() > 2 << 20 and pool.nbytes == 0
