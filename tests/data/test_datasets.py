"""fastconv.datasets: IDX parsing, file search (Keras' own cache too), download through pooch
with a SHA-256 check, digits."""

import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from fastconv.datasets import _idx, digits, fashion_mnist, mnist

FILE_NAMES = [name for _, name in _idx.FILES]


def idx_bytes(arr, type_code=0x08):
    arr = np.asarray(arr)
    header = struct.pack(">BBBB", 0, 0, type_code, arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def make_mnist_like(rng, n_train=40, n_test=12):
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test, dtype=np.uint8)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_set(directory, arrays, gz=True, dotted=False):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, gz_name in _idx.FILES:
        data = idx_bytes(arrays[role])
        name = gz_name if gz else gz_name[:-3]
        if dotted:
            name = name.replace("-idx", ".idx")
        if gz:
            data = gzip.compress(data, mtime=0)
        (directory / name).write_bytes(data)
        paths[role] = directory / name
    return paths


def check_equal(loaded, arrays):
    (xt, yt), (xs, ys) = loaded
    for got, role in ((xt, "x_train"), (yt, "y_train"), (xs, "x_test"), (ys, "y_test")):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[role])


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No real data anywhere: empty HOME, no FASTCONV_DATA, no system dirs, no mirror env."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.delenv("FASTCONV_DATASET_MIRROR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setattr(_idx, "SYSTEM_DATA_DIRS", ())
    return home


# ----------------------------------------------------------------------------- IDX parsing
def test_parse_idx_roundtrip_types():
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    out = _idx.parse_idx(idx_bytes(a, 0x0C))
    assert out.shape == (2, 3, 4) and out.dtype == np.int32
    np.testing.assert_array_equal(out, a)
    f = np.linspace(-1, 1, 6, dtype=np.float32)
    np.testing.assert_array_equal(_idx.parse_idx(idx_bytes(f, 0x0D)), f)


def test_bad_magic_names_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x03" + bytes(12))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        _idx.read_idx(p)


def test_unknown_type_code_rejected():
    with pytest.raises(ValueError, match="magic"):
        _idx.parse_idx(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")


def test_truncated_and_trailing(tmp_path):
    good = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(good[:-5]))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*truncated"):
        _idx.read_idx(p)
    p.write_bytes(good + b"xx")
    with pytest.raises(ValueError, match="trailing"):
        _idx.read_idx(p)
    p.write_bytes(good[:10])  # header cut in the middle
    with pytest.raises(ValueError, match="truncated IDX header"):
        _idx.read_idx(p)


def test_corrupt_gzip_names_file(tmp_path):
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:30])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*gzip"):
        _idx.read_idx(p)


def test_wrong_magic_for_role(tmp_path, isolated):
    arrays = make_mnist_like(np.random.default_rng(0))
    paths = write_set(tmp_path / "d", arrays)
    # a label file where the images belong
    paths["x_train"].write_bytes(paths["y_train"].read_bytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: magic number 2049"):
        mnist.load_data(path=tmp_path / "d")


def test_count_mismatch_and_label_range(tmp_path, isolated):
    rng = np.random.default_rng(1)
    arrays = make_mnist_like(rng)
    arrays["y_test"] = arrays["y_test"][:-1]
    write_set(tmp_path / "a", arrays)
    with pytest.raises(ValueError, match="12 images but .* 11 labels"):
        mnist.load_data(path=tmp_path / "a")
    arrays = make_mnist_like(rng)
    arrays["y_train"][3] = 10
    write_set(tmp_path / "b", arrays)
    with pytest.raises(ValueError, match="label 10 out of range"):
        mnist.load_data(path=tmp_path / "b")


# ----------------------------------------------------------------------------- search order
@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True)])
def test_load_from_path(tmp_path, isolated, gz, dotted):
    arrays = make_mnist_like(np.random.default_rng(2))
    write_set(tmp_path / "mine", arrays, gz=gz, dotted=dotted)
    check_equal(mnist.load_data(path=tmp_path / "mine"), arrays)


def test_search_order(tmp_path, isolated, monkeypatch):
    rng = np.random.default_rng(3)
    a_env, a_home, a_sys = (make_mnist_like(rng) for _ in range(3))
    write_set(tmp_path / "sys" / "fashion-mnist", a_sys)  # Debian's spelling
    monkeypatch.setattr(_idx, "SYSTEM_DATA_DIRS", (str(tmp_path / "sys"),))
    check_equal(fashion_mnist.load_data(), a_sys)
    write_set(isolated / ".fastconv" / "datasets" / "fashion_mnist", a_home)
    check_equal(fashion_mnist.load_data(), a_home)
    write_set(tmp_path / "env" / "fashion_mnist", a_env)
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "env"))
    check_equal(fashion_mnist.load_data(), a_env)
    a_path = make_mnist_like(rng)
    write_set(tmp_path / "explicit", a_path)
    check_equal(fashion_mnist.load_data(path=tmp_path / "explicit"), a_path)


def test_incomplete_directory_is_skipped(tmp_path, isolated, monkeypatch):
    arrays = make_mnist_like(np.random.default_rng(4))
    write_set(tmp_path / "env" / "mnist", arrays)
    (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    full = make_mnist_like(np.random.default_rng(5))
    write_set(isolated / ".fastconv" / "datasets" / "mnist", full)
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "env"))
    check_equal(mnist.load_data(), full)


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[0] == 9 and x_train.max() == 255  # first item: an ankle boot


# ----------------------------------------------------------------------------- download
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a generated data set under /mnist/."""
    root = tmp_path / "www"
    arrays = make_mnist_like(np.random.default_rng(6))
    paths = write_set(root / "mnist", arrays)
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths.values()}
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield url, arrays, hashes
    finally:
        server.shutdown()
        server.server_close()


def test_download_verified_into_cache(served, isolated, monkeypatch):
    url, arrays, hashes = served
    monkeypatch.setattr(mnist, "SHA256", hashes)
    monkeypatch.setattr(mnist, "RAW_SHA256", {})
    check_equal(mnist.load_data(base_url=url + "mnist/"), arrays)
    cache = isolated / ".fastconv" / "datasets" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILE_NAMES)
    # second call reads the cache: works with the server's files gone
    check_equal(mnist.load_data(base_url="http://127.0.0.1:9/nothing/"), arrays)


def test_download_mirror_env_and_module_attribute(served, isolated, monkeypatch, tmp_path):
    url, arrays, hashes = served
    monkeypatch.setattr(mnist, "SHA256", hashes)
    monkeypatch.setenv("FASTCONV_DATASET_MIRROR", url + "{name}")
    check_equal(mnist.load_data(path=tmp_path / "viaenv"), arrays)
    assert (tmp_path / "viaenv" / "train-images-idx3-ubyte.gz").is_file()
    monkeypatch.delenv("FASTCONV_DATASET_MIRROR")
    monkeypatch.setattr(mnist, "BASE_URL", url + "mnist")
    check_equal(mnist.load_data(path=tmp_path / "viaattr"), arrays)


def test_download_hash_mismatch_leaves_nothing(served, isolated, monkeypatch):
    url, arrays, hashes = served
    bad = dict(hashes)
    bad["train-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(mnist, "SHA256", bad)
    monkeypatch.setattr(mnist, "RAW_SHA256", {"train-images-idx3-ubyte.gz": "1" * 64})
    with pytest.raises(ValueError, match="SHA-256 mismatch.*train-images-idx3-ubyte.gz"):
        mnist.load_data(base_url=url + "mnist/")
    cache = isolated / ".fastconv" / "datasets" / "mnist"
    left = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert "train-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")]


def test_download_accepts_recompressed_via_raw_hash(served, isolated, monkeypatch):
    url, arrays, hashes = served
    raw = {n: hashlib.sha256(idx_bytes(arrays[r])).hexdigest() for r, n in _idx.FILES}
    monkeypatch.setattr(mnist, "SHA256", {n: "f" * 64 for n in hashes})  # gz bytes differ
    monkeypatch.setattr(mnist, "RAW_SHA256", raw)
    check_equal(mnist.load_data(base_url=url + "mnist/"), arrays)


def test_download_missing_file_is_clear_error(served, isolated, monkeypatch):
    url, _, hashes = served
    monkeypatch.setattr(mnist, "SHA256", hashes)
    with pytest.raises(OSError, match="Could not download .*nowhere/train-images") as err:
        mnist.load_data(base_url=url + "nowhere/")
    assert str(isolated / ".fastconv" / "datasets" / "mnist") in str(err.value)  # where to put it


def test_published_hashes_look_right():
    for table in (mnist.SHA256, mnist.RAW_SHA256, fashion_mnist.SHA256, fashion_mnist.RAW_SHA256):
        assert sorted(table) == sorted(FILE_NAMES)
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


# ----------------------------------------------------------------------------- digits
def test_digits_shapes_and_ranges():
    (x_train, y_train), (x_test, y_test) = digits.load_data(shifted_copies=False)
    assert x_train.shape == (1347, 28, 28) and x_test.shape == (450, 28, 28)
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert x_train.max() == 255 and x_train.min() == 0
    assert set(np.unique(y_train)) == set(range(10)) and y_test.max() == 9
    # MNIST-like layout: the digit sits in the central 20x20, a 4-pixel black border
    assert x_train[:, :4].max() == 0 and x_train[:, -4:].max() == 0
    assert x_train[:, :, :4].max() == 0 and x_train[:, :, -4:].max() == 0
    assert x_train[:, 4:24, 4:24].mean() > 30


def test_digits_deterministic_stratified_and_complete():
    (a, b), (c, d) = digits.load_data(shifted_copies=False)
    (a2, b2), (c2, d2) = digits.load_data(shifted_copies=False)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(d, d2)
    raw_images, raw_labels = digits._load_raw()
    assert raw_images.max() == 16
    np.testing.assert_array_equal(
        np.bincount(b) + np.bincount(d), np.bincount(raw_labels)
    )  # every sample used once
    share = np.bincount(d) / np.bincount(raw_labels)
    assert np.all(np.abs(share - 450 / 1797) < 0.01)
    assert not np.all(b[:-1] <= b[1:])  # shuffled, not sorted by class


def test_digits_shifted_copies_extend_only_the_training_set():
    (plain_x, plain_y), (plain_tx, plain_ty) = digits.load_data(shifted_copies=False)
    (x, y), (tx, ty) = digits.load_data()
    n = len(plain_x)
    assert x.shape == (5 * n, 28, 28) and y.shape == (5 * n,)
    np.testing.assert_array_equal(x[:n], plain_x)
    np.testing.assert_array_equal(tx, plain_tx)
    np.testing.assert_array_equal(ty, plain_ty)
    for k in range(1, 5):
        copy = x[k * n : (k + 1) * n]
        np.testing.assert_array_equal(y[k * n : (k + 1) * n], plain_y)
        # a one-pixel shift of the original: same ink, different placement
        np.testing.assert_array_equal(copy.sum(axis=(1, 2)), plain_x.sum(axis=(1, 2)))
        assert not np.array_equal(copy, plain_x)
        moved = [np.roll(plain_x, s, axis=(1, 2)) for s in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        assert any(np.array_equal(copy, m) for m in moved)


def test_digits_resize_matches_pillow_bilinear():
    from PIL import Image

    raw_images, _ = digits._load_raw()
    ours = digits._to_mnist_like(raw_images[:5])[:, 4:24, 4:24].astype(int)
    for i in range(5):
        img = Image.fromarray(raw_images[i].astype(np.float32) * (255 / 16), mode="F")
        ref = np.asarray(img.resize((20, 20), Image.Resampling.BILINEAR))
        assert np.abs(ours[i] - np.clip(np.rint(ref), 0, 255)).max() <= 1


# ----------------------------------------------------------------------------- Keras' own files
def write_keras_npz(path, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # the layout of Keras' mnist.npz


def test_keras_users_mnist_npz_is_read(isolated, tmp_path, monkeypatch):
    arrays = make_mnist_like(np.random.default_rng(7))
    write_keras_npz(isolated / ".keras" / "datasets" / "mnist.npz", arrays)
    monkeypatch.setattr(mnist, "BASE_URL", "http://127.0.0.1:9/never/")  # no download needed
    check_equal(mnist.load_data(), arrays)
    check_equal(mnist.load_data(path="mnist.npz"), arrays)  # Keras' own call
    # $KERAS_HOME moves Keras' cache; IDX files found in a folder come first
    moved = make_mnist_like(np.random.default_rng(8))
    write_keras_npz(tmp_path / "kh" / "datasets" / "mnist.npz", moved)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    check_equal(mnist.load_data(), moved)
    idx = make_mnist_like(np.random.default_rng(9))
    write_set(isolated / ".fastconv" / "datasets" / "mnist", idx)
    check_equal(mnist.load_data(), idx)
    explicit = tmp_path / "elsewhere.npz"
    write_keras_npz(explicit, arrays)
    check_equal(mnist.load_data(path=explicit), arrays)


def test_keras_npz_refuses_foreign_layouts(isolated, tmp_path):
    arrays = make_mnist_like(np.random.default_rng(10))
    bad = tmp_path / "partial.npz"
    np.savez(bad, x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(ValueError, match="partial.npz: no array named x_test, y_test"):
        mnist.load_data(path=bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **dict(arrays, y_test=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ValueError, match="pickled.npz: not a readable .npz"):
        mnist.load_data(path=pickled)
    wide = tmp_path / "wide.npz"
    np.savez(wide, **dict(arrays, x_test=arrays["x_test"].astype(np.float32)))
    with pytest.raises(ValueError, match="wide.npz: x_test has dtype float32"):
        mnist.load_data(path=wide)
    short = tmp_path / "short.npz"
    np.savez(short, **dict(arrays, y_train=arrays["y_train"][:-1]))
    with pytest.raises(ValueError, match="40 images but .* 39 labels"):
        mnist.load_data(path=short)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable"):
        mnist.load_data(path=junk)


def test_keras_fashion_mnist_cache_folder_is_searched(isolated):
    arrays = make_mnist_like(np.random.default_rng(11))
    write_set(isolated / ".keras" / "datasets" / "fashion-mnist", arrays)  # where Keras keeps it
    check_equal(fashion_mnist.load_data(), arrays)


def test_download_goes_through_pooch(served, isolated, monkeypatch):
    import pooch

    url, arrays, hashes = served
    monkeypatch.setattr(mnist, "SHA256", hashes)
    calls = []
    real = pooch.retrieve

    def spy(origin, **kw):
        calls.append(origin)
        return real(origin, **kw)

    monkeypatch.setattr(pooch, "retrieve", spy)
    check_equal(mnist.load_data(base_url=url + "mnist/"), arrays)
    assert sorted(c.rsplit("/", 1)[1] for c in calls) == sorted(FILE_NAMES)
