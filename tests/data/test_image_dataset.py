"""fastconv.utils.image_dataset_from_directory on generated real image files."""

import os

import numpy as np
import pytest
from fastconv.utils import image_dataset as image_dataset_module
from fastconv.utils import image_dataset_from_directory
from kaggle_images import animal_image
from PIL import Image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """cat/ (12 jpg + 1 png) and dog/ (11 jpg + a nested folder with 1 jpg), plus noise files."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for kind, n in (("cat", 12), ("dog", 11)):
        d = root / kind
        d.mkdir()
        for i in range(n):
            size = tuple(int(s) for s in rng.integers(30, 90, 2))
            animal_image(kind, rng, size).save(d / f"{kind}.{i}.jpg", quality=90)
    animal_image("cat", rng, (50, 40)).save(root / "cat" / "extra.PNG")
    (root / "dog" / "nested").mkdir()
    animal_image("dog", rng, (45, 60)).save(root / "dog" / "nested" / "deep.jpeg")
    (root / "dog" / "notes.txt").write_text("not an image")
    animal_image("cat", rng, (20, 20)).save(root / "stray.jpg")  # ignored: not in a class dir
    return root


def collect(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def test_basic_batches_labels_and_attributes(folder, capsys):
    ds = image_dataset_from_directory(folder, image_size=(36, 44), batch_size=8, seed=1)
    assert "Found 25 files belonging to 2 classes." in capsys.readouterr().out
    assert ds.class_names == ["cat", "dog"]
    assert len(ds.file_paths) == 25 and len(ds) == 4
    assert not any(p.endswith(".txt") or p.endswith("stray.jpg") for p in ds.file_paths)
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(8, 36, 44, 3)] * 3 + [(1, 36, 44, 3)]
    x, y = collect(ds)
    assert x.dtype == np.float32 and y.dtype == np.int32 and y.shape == (25,)
    assert 0 <= x.min() and x.max() <= 255 and x.max() > 200
    # labels follow the folder, and the classes are separable by colour (red vs blue)
    red_minus_blue = x[..., 0].mean(axis=(1, 2)) - x[..., 2].mean(axis=(1, 2))
    assert np.all((red_minus_blue > 0) == (y == 0))
    assert sorted(y.tolist()) == [0] * 13 + [1] * 12


def test_images_equal_pillow_reference(folder, monkeypatch):
    monkeypatch.setattr(image_dataset_module, "USE_JPEG_DRAFT", False)
    ds = image_dataset_from_directory(folder, image_size=(30, 30), batch_size=None, shuffle=False)
    path = ds.file_paths[0]
    assert path.endswith(os.path.join("cat", "cat.0.jpg"))  # sorted order without shuffle
    x, y = next(iter(ds))
    assert x.shape == (30, 30, 3) and y.shape == () and int(y) == 0
    with Image.open(path) as img:
        ref = np.asarray(img.convert("RGB").resize((30, 30), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(x, ref)


def test_label_modes(folder):
    kw = dict(image_size=(16, 16), batch_size=32, shuffle=False, verbose=False)
    _, y_int = next(iter(image_dataset_from_directory(folder, **kw)))
    _, y_bin = next(iter(image_dataset_from_directory(folder, label_mode="binary", **kw)))
    _, y_cat = next(iter(image_dataset_from_directory(folder, label_mode="categorical", **kw)))
    assert y_bin.dtype == np.float32 and y_bin.shape == (25, 1)
    np.testing.assert_array_equal(y_bin[:, 0], y_int)
    assert y_cat.dtype == np.float32 and y_cat.shape == (25, 2)
    np.testing.assert_array_equal(y_cat.argmax(1), y_int)
    np.testing.assert_array_equal(y_cat.sum(1), 1)
    only_images = next(iter(image_dataset_from_directory(folder, label_mode=None, **kw)))
    assert isinstance(only_images, np.ndarray) and only_images.shape == (25, 16, 16, 3)


def test_color_modes_and_class_names_order(folder):
    kw = dict(image_size=(12, 10), batch_size=4, verbose=False, seed=0)
    g, _ = next(iter(image_dataset_from_directory(folder, color_mode="grayscale", **kw)))
    a, _ = next(iter(image_dataset_from_directory(folder, color_mode="rgba", **kw)))
    assert g.shape == (4, 12, 10, 1) and a.shape == (4, 12, 10, 4)
    assert np.all(a[..., 3] == 255)
    ds = image_dataset_from_directory(folder, class_names=["dog", "cat"], shuffle=False, **kw)
    assert ds.class_names == ["dog", "cat"]
    _, y = collect(ds)
    assert y[0] == 0 and "dog" in ds.file_paths[0]


def test_explicit_labels_and_none(folder):
    sub = folder / "dog"
    ds = image_dataset_from_directory(
        sub, labels=list(range(12)), image_size=(8, 8), shuffle=False, verbose=False
    )
    assert ds.file_paths[-1].endswith("deep.jpeg")  # recursive, sorted by path
    _, y = collect(ds)
    np.testing.assert_array_equal(y, np.arange(12))
    ds = image_dataset_from_directory(sub, labels=None, image_size=(8, 8), verbose=False)
    assert next(iter(ds)).shape == (12, 8, 8, 3)
    with pytest.raises(ValueError, match="lengths of `labels`"):
        image_dataset_from_directory(sub, labels=[0, 1], verbose=False)


def test_validation_split_deterministic_and_disjoint(folder):
    kw = dict(image_size=(8, 8), validation_split=0.2, seed=123, verbose=False)
    train = image_dataset_from_directory(folder, subset="training", **kw)
    val = image_dataset_from_directory(folder, subset="validation", **kw)
    train2, val2 = image_dataset_from_directory(folder, subset="both", **kw)
    assert len(val.file_paths) == 5 and len(train.file_paths) == 20
    assert set(train.file_paths).isdisjoint(val.file_paths)
    assert set(train.file_paths) | set(val.file_paths) == set(train.file_paths + val.file_paths)
    assert train.file_paths == train2.file_paths and val.file_paths == val2.file_paths
    # Keras' rule: shuffle the sorted list with RandomState(seed), validation is the tail
    full = image_dataset_from_directory(folder, shuffle=False, verbose=False)
    paths = list(full.file_paths)
    np.random.RandomState(123).shuffle(paths)
    assert val.file_paths == paths[-5:]
    other = image_dataset_from_directory(folder, subset="validation", **{**kw, "seed": 7})
    assert other.file_paths != val.file_paths
    # labels stay attached to their files after the shuffle
    _, y = collect(val)
    expected = [0 if os.sep + "cat" + os.sep in p else 1 for p in val.file_paths]
    assert y.tolist() == expected or sorted(y.tolist()) == sorted(expected)


def test_labels_follow_files_after_shuffle(folder):
    ds = image_dataset_from_directory(
        folder, image_size=(8, 8), batch_size=None, seed=5, shuffle=False, verbose=False
    )
    ds_sh = image_dataset_from_directory(folder, image_size=(8, 8), seed=5, verbose=False)
    truth = {p: (0 if os.sep + "cat" + os.sep in p else 1) for p in ds.file_paths}
    assert [truth[p] for p in ds_sh.file_paths] == ds_sh.labels.tolist()


def test_reshuffled_every_epoch_and_seeded(folder):
    kw = dict(image_size=(8, 8), batch_size=25, seed=42, verbose=False)
    ds = image_dataset_from_directory(folder, **kw)
    (x1, y1), (x2, y2) = next(iter(ds)), next(iter(ds))
    assert sorted(y1.tolist()) == sorted(y2.tolist())
    assert not np.array_equal(x1, x2)  # a new order each epoch
    assert sorted(x1.sum(axis=(1, 2, 3)).tolist()) == sorted(x2.sum(axis=(1, 2, 3)).tolist())
    again = image_dataset_from_directory(folder, **kw)
    np.testing.assert_array_equal(next(iter(again))[0], x1)  # same seed, same epochs
    fixed = image_dataset_from_directory(folder, shuffle=False, **kw)
    np.testing.assert_array_equal(next(iter(fixed))[0], next(iter(fixed))[0])


def test_crop_to_aspect_ratio(tmp_path):
    d = tmp_path / "c" / "only"
    d.mkdir(parents=True)
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, 20:40] = 255  # white centre square, black sides
    Image.fromarray(arr).save(d / "wide.png")
    kw = dict(image_size=(10, 10), batch_size=None, verbose=False, shuffle=False)
    x_crop, _ = next(
        iter(image_dataset_from_directory(tmp_path / "c", crop_to_aspect_ratio=True, **kw))
    )
    x_squash, _ = next(iter(image_dataset_from_directory(tmp_path / "c", **kw)))
    assert x_crop.min() > 250  # only the centre square is kept
    assert x_squash.min() < 5  # squashed: black sides remain


def test_jpeg_draft_close_to_full_decode(tmp_path, monkeypatch):
    d = tmp_path / "big" / "a"
    d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        img = animal_image("cat", rng, (470 - 40 * i, 380))
        img = img.resize((img.width // 8, img.height // 8)).resize(img.size)  # photo-smooth
        img.save(d / f"cat.{i}.jpg", quality=92)
    kw = dict(image_size=(90, 90), shuffle=False, verbose=False)
    x_draft, _ = next(iter(image_dataset_from_directory(tmp_path / "big", **kw)))
    monkeypatch.setattr(image_dataset_module, "USE_JPEG_DRAFT", False)
    x_full, _ = next(iter(image_dataset_from_directory(tmp_path / "big", **kw)))
    assert x_draft.shape == x_full.shape == (3, 90, 90, 3)
    assert np.abs(x_draft - x_full).mean() < 2.0


def test_unreadable_image_names_file(tmp_path):
    d = tmp_path / "bad" / "cat"
    d.mkdir(parents=True)
    animal_image("cat", np.random.default_rng(0), (20, 20)).save(d / "cat.0.jpg")
    (d / "cat.1.jpg").write_bytes(b"this is not a jpeg at all")
    ds = image_dataset_from_directory(tmp_path / "bad", image_size=(8, 8), verbose=False)
    with pytest.raises(ValueError, match=r"cat\.1\.jpg"):
        list(ds)


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not an existing directory"):
        image_dataset_from_directory(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    animal_image("cat", np.random.default_rng(0), (20, 20)).save(tmp_path / "flat" / "a.jpg")
    with pytest.raises(ValueError, match="No class sub-folders"):
        image_dataset_from_directory(tmp_path / "flat")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "dog").mkdir()
    with pytest.raises(ValueError, match="No images found"):
        image_dataset_from_directory(tmp_path / "empty", verbose=False)


def test_argument_errors(folder):
    with pytest.raises(ValueError, match="must provide a `seed`"):
        image_dataset_from_directory(folder, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="`subset` must be one of"):
        image_dataset_from_directory(folder, validation_split=0.2, seed=1)
    with pytest.raises(ValueError, match="only valid if `validation_split`"):
        image_dataset_from_directory(folder, subset="training")
    with pytest.raises(ValueError, match="label_mode"):
        image_dataset_from_directory(folder, label_mode="sparse")
    with pytest.raises(ValueError, match="color_mode"):
        image_dataset_from_directory(folder, color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation"):
        image_dataset_from_directory(folder, interpolation="cubic-ish")
    with pytest.raises(ValueError, match="did not match"):
        image_dataset_from_directory(folder, class_names=["cat", "cow"])
    with pytest.raises(ValueError, match="exactly 2 class_names"):
        image_dataset_from_directory(folder / "dog", label_mode="binary", verbose=False)


def test_prefetch_overlaps_consumer(folder):
    """Workers decode the next batches while the consumer holds the current one."""
    import time

    ds = image_dataset_from_directory(
        folder, image_size=(20, 20), batch_size=4, seed=0, verbose=False
    )
    calls = []
    real = ds.load_image
    ds.load_image = lambda p: (calls.append(p), real(p))[1]
    it = iter(ds)
    next(it)
    time.sleep(0.3)
    assert len(calls) > 4 * 2  # more than the batch handed out has been decoded
    it.close()
