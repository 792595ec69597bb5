"""The listings' tf.data and tensor idioms: ``take``/``skip``/``cardinality``/
``as_numpy_iterator`` on ``image_dataset_from_directory`` datasets, ``.numpy()`` on batches and
on layer and model outputs, ``fastconv.ops.convert_to_numpy``/``convert_to_tensor``."""

import fastconv as keras
import numpy as np
import pytest
from fastconv import ops
from fastconv.utils import image_dataset_from_directory
from PIL import Image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """cat/ and dog/ with 5 small PNGs each: 10 files, batches of 4 -> 3 batches."""
    root = tmp_path_factory.mktemp("listing")
    rng = np.random.default_rng(0)
    for kind in ("cat", "dog"):
        (root / kind).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / kind / f"{kind}.{i}.png")
    return root


def dataset(folder, **kw):
    kw.setdefault("batch_size", 4)
    return image_dataset_from_directory(folder, image_size=(12, 12), verbose=False, **kw)


def plain(batches):
    return [tuple(np.asarray(part).copy() for part in b) for b in batches]


def test_take_skip_cardinality_in_order(folder):
    ds = dataset(folder, shuffle=False)
    every = plain(ds)
    assert len(every) == 3 and int(ds.cardinality()) == 3
    assert ds.cardinality().numpy() == 3 and type(ds.cardinality().numpy()) is np.ndarray
    for view, expect in (
        (ds.take(1), every[:1]),
        (ds.take(2), every[:2]),
        (ds.take(-1), every),
        (ds.take(10), every),
        (ds.take(0), []),
        (ds.skip(1), every[1:]),
        (ds.skip(5), []),
        (ds.skip(-1), []),
        (ds.skip(1).take(1), every[1:2]),
        (ds.take(2).skip(1), every[1:2]),
        (ds.take(3).skip(1).take(5), every[1:]),
    ):
        got = plain(view)
        assert len(view) == len(expect) == int(view.cardinality()) == len(got)
        for (gx, gy), (ex, ey) in zip(got, expect):
            np.testing.assert_array_equal(gx, ex)
            np.testing.assert_array_equal(gy, ey)
    assert len(ds) == 3  # the original is untouched
    with pytest.raises(TypeError, match="take"):
        ds.take(1.5)


def test_take_reshuffles_each_epoch_and_unbatched(folder):
    ds = dataset(folder, seed=3)
    first = [np.asarray(x).copy() for x, _ in ds.take(1)]
    again = [np.asarray(x).copy() for x, _ in ds.take(1)]
    assert len(first) == len(again) == 1 and first[0].shape == (4, 12, 12, 3)
    assert not np.array_equal(first[0], again[0])  # a new shuffle per epoch, as tf.data
    single = dataset(folder, batch_size=None, shuffle=False)
    items = list(single.take(3))
    assert len(items) == 3 and items[0][0].shape == (12, 12, 3) and items[0][1].ndim == 0
    assert int(single.skip(4).cardinality()) == 6


def test_numpy_on_batches_and_as_numpy_iterator(folder):
    ds = dataset(folder, shuffle=False, label_mode="binary")
    for images, labels in ds.take(1):
        first = images[0].numpy()
        assert type(first) is np.ndarray and first.shape == (12, 12, 3)
        np.testing.assert_array_equal(first, np.asarray(images)[0])
        assert type(labels.numpy()) is np.ndarray and labels.shape == (4, 1)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 3
    assert all(type(x) is np.ndarray and type(y) is np.ndarray for x, y in batches)


def test_augmentation_listing_and_model_outputs(folder):
    """The chapter's listing: ``augmented_images[0].numpy().astype("uint8")``."""
    train_dataset = dataset(folder, seed=1)
    data_augmentation = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.1),
            keras.layers.RandomZoom(0.2),
        ]
    )
    for images, _ in train_dataset.take(1):
        for _ in range(2):
            augmented_images = data_augmentation(images)
            shown = augmented_images[0].numpy().astype("uint8")
            assert type(shown) is np.ndarray and shown.shape == (12, 12, 3)
    layer_out = keras.layers.Dense(2)(np.ones((3, 4), np.float32))
    assert type(layer_out.numpy()) is np.ndarray and layer_out.shape == (3, 2)
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(model(x).numpy(), model.predict(x, verbose=0))
    assert type(model.predict(x, verbose=0)) is np.ndarray  # NumPy everywhere else
    assert type(model.get_weights()[0]) is np.ndarray
    assert isinstance(float(model(x).mean()), float)


def test_fit_on_a_taken_dataset_reads_only_those_batches(folder):
    ds = dataset(folder, label_mode="binary", seed=0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    model.fit(ds.take(2), epochs=2, verbose=0, callbacks=[Count()])
    assert seen == [0, 1, 0, 1]
    assert model.evaluate(ds.skip(2), verbose=0)[0] > 0


def test_convert_to_numpy_and_to_tensor_as_keras():
    a = ops.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]])
    assert a.dtype == np.float32 and a.numpy().dtype == np.float32  # Python floats: floatx
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32  # Python ints: int32
    f64 = np.zeros(3, np.float64)
    assert ops.convert_to_tensor(f64).dtype == np.float64  # arrays keep their dtype
    assert ops.convert_to_tensor(f64, dtype="float16").dtype == np.float16
    back = ops.convert_to_numpy(a)
    assert type(back) is np.ndarray and back.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert type(ops.convert_to_numpy([1, 2])) is np.ndarray
    with pytest.raises(ValueError, match="sparse"):
        ops.convert_to_tensor([1.0], sparse=True)
    with pytest.raises(TypeError, match="symbolic"):
        ops.convert_to_numpy(keras.Input(shape=(3,)))
