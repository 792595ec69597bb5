"""Callbacks with Keras 3's semantics: ModelCheckpoint, EarlyStopping, the hooks' order."""

from __future__ import annotations

import dataclasses

import fastconv as keras
import numpy as np
import pytest
from fastconv import callbacks, optimizers

from models.toy import compiled_small, toy_data


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


class _Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.val_loss, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.val_loss.append(logs["val_loss"])
        self.weights.append(self.model.get_weights())


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path, rng):
    """In fit, on noise (the validation loss goes up and down): the file holds the weights of the
    epoch with the lowest validation loss."""
    (x, y), (vx, vy) = (
        (rng.standard_normal((n, 6, 6, 1)).astype(np.float32), rng.integers(0, 2, n))
        for n in (64, 32)
    )
    model, rec = compiled_small(optimizer=optimizers.Adam(0.05), seed=1), _Recorder()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "best.keras", save_best_only=True)
    model.fit(
        x, y, epochs=5, batch_size=16, validation_data=(vx, vy), callbacks=[rec, ckpt], verbose=0
    )
    best = int(np.argmin(rec.val_loss))
    loaded = keras.models.load_model(tmp_path / "best.keras")
    for a, b in zip(loaded.get_weights(), rec.weights[best]):
        np.testing.assert_array_equal(a, b)


@dataclasses.dataclass(frozen=True)
class EarlyStoppingCase:
    """Validation losses per epoch (the best at epoch 1), the patience, and the epoch training
    stops at (0: it never stops, and ends)."""

    id: str
    val_losses: tuple
    patience: int
    stopped_epoch: int


EARLY_STOPPING_CASES = [
    EarlyStoppingCase("patience-runs-out", (1.0, 0.5, 0.8, 0.9), patience=1, stopped_epoch=2),
    EarlyStoppingCase("training-ends-first", (1.0, 0.5, 0.8), patience=10, stopped_epoch=0),
]


@pytest.mark.parametrize("case", EARLY_STOPPING_CASES, ids=[c.id for c in EARLY_STOPPING_CASES])
def test_early_stopping_restores_best_weights(rng, case):
    model = compiled_small()
    model.fit(*toy_data(rng, n=8), epochs=1, verbose=0)
    es = callbacks.EarlyStopping(
        monitor="val_loss", patience=case.patience, restore_best_weights=True
    )
    es.set_model(model)
    es.on_train_begin()
    for epoch, val in enumerate(case.val_losses):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        es.on_epoch_end(epoch, {"val_loss": val})
        if model.stop_training:
            break
    assert model.stop_training == (case.stopped_epoch > 0)
    assert es.stopped_epoch == case.stopped_epoch and es.best_epoch == 1
    es.on_train_end()  # Keras 3 restores at the end of training, stopped early or not
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
