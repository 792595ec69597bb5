"""keras.utils' everyday functions as Keras documents them: to_categorical, load_img,
img_to_array, array_to_img, and get_file (pooch) against a loopback HTTP server and file:// URLs,
with Keras' cache folders and an offline error that names the file, the URL and the folder."""

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading

import numpy as np
import pytest
from fastconv.utils import array_to_img, get_file, img_to_array, load_img, to_categorical
from PIL import Image


# ----------------------------------------------------------------------------- to_categorical
def test_to_categorical_as_documented():
    np.testing.assert_array_equal(to_categorical([0, 1, 2, 3], num_classes=4), np.eye(4))
    out = to_categorical(np.array([[1], [2]]))  # a trailing axis of 1 is dropped, as Keras
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1, 0], [0, 0, 1]])
    grid = to_categorical(np.array([[1, 2], [0, 1]]))
    assert grid.shape == (2, 2, 3) and grid[1, 0].tolist() == [1, 0, 0]
    assert to_categorical([2.0, 0.0]).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        to_categorical([0.5, 1])


# ----------------------------------------------------------------------------- images
@pytest.fixture
def picture(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_load_img_and_img_to_array(picture):
    path, pixels = picture
    img = load_img(path)
    assert img.mode == "RGB" and img.size == (10, 6)  # PIL: (width, height)
    x = img_to_array(img)
    assert x.dtype == np.float32 and x.shape == (6, 10, 3)
    np.testing.assert_array_equal(x, pixels)
    assert img_to_array(img, dtype="uint8").dtype == np.uint8
    assert img_to_array(img, data_format="channels_first").shape == (3, 6, 10)
    small = load_img(str(path), target_size=(3, 5))  # (height, width), nearest by default
    assert small.size == (5, 3)
    expect = Image.fromarray(pixels).resize((5, 3), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(np.asarray(small), np.asarray(expect))
    grey = load_img(path, color_mode="grayscale")
    assert grey.mode == "L" and img_to_array(grey).shape == (6, 10, 1)
    assert img_to_array(load_img(path, color_mode="rgba")).shape == (6, 10, 4)
    assert load_img(io.BytesIO(path.read_bytes())).size == (10, 6)  # file objects too


def test_load_img_keep_aspect_ratio_and_errors(picture):
    path, pixels = picture
    img = load_img(path, target_size=(6, 6), keep_aspect_ratio=True)  # centre 6x6 crop
    np.testing.assert_array_equal(np.asarray(img), pixels[:, 2:8])
    with pytest.raises(ValueError, match="Invalid interpolation method cubic"):
        load_img(path, target_size=(3, 3), interpolation="cubic")
    with pytest.raises(ValueError, match="color_mode"):
        load_img(path, color_mode="cmyk")


def test_array_to_img_scales_as_keras():
    x = np.arange(18, dtype=np.float32).reshape(2, 3, 3) - 4
    img = array_to_img(x)
    assert img.mode == "RGB" and img.size == (3, 2)
    expect = ((x - x.min()) / (x.max() - x.min()) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(img), expect)  # min -> 0, max -> 255, truncated
    raw = np.full((2, 3, 3), 7.9, np.float32)
    assert np.asarray(array_to_img(raw, scale=False)).max() == 7
    assert array_to_img(np.full((2, 3, 1), 5.0)).mode == "L"  # constant: all zeros
    assert np.asarray(array_to_img(np.full((2, 3, 1), 5.0))).max() == 0
    assert array_to_img(np.zeros((2, 3, 4))).mode == "RGBA"
    assert array_to_img(np.zeros((3, 2, 5)), data_format="channels_first").size == (5, 2)
    back = img_to_array(array_to_img(np.arange(6.0).reshape(2, 3, 1) * 51, scale=False))
    np.testing.assert_array_equal(back[..., 0], [[0, 51, 102], [153, 204, 255]])
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="channel number: 2"):
        array_to_img(np.zeros((2, 3, 2)))


# ----------------------------------------------------------------------------- get_file
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def keras_home(monkeypatch, tmp_path):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over tmp_path/www: data.bin and data.tar.gz."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(b"fastconv" * 1000)
    inner = tmp_path / "inner.txt"
    inner.write_text("inside")
    with tarfile.open(root / "data.tar.gz", "w:gz") as tar:
        tar.add(inner, arcname="folder/inner.txt")
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port_url():
    return "http://127.0.0.1:9/gone/"  # the discard port: nothing listens on loopback


def test_get_file_downloads_into_the_keras_cache_once(server, keras_home):
    url, root = server
    data = (root / "data.bin").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    path = get_file("data.bin", url + "data.bin", file_hash=sha, progress=False)
    assert path == str(keras_home / "datasets" / "data.bin")
    assert open(path, "rb").read() == data
    # cached: found without the network, whatever the origin now is
    again = get_file("data.bin", _closed_port_url() + "data.bin", file_hash=sha, progress=False)
    assert again == path
    # fname defaults to the URL's file name; cache_subdir and cache_dir as Keras
    other = get_file(origin=url + "data.bin", cache_subdir="models", cache_dir=str(root / "c"))
    assert other == str(root / "c" / "models" / "data.bin")
    md5 = hashlib.md5(data).hexdigest()
    assert get_file("m.bin", url + "data.bin", md5_hash=md5, progress=False).endswith("m.bin")


def test_get_file_hash_checks(server, keras_home):
    url, root = server
    data = (root / "data.bin").read_bytes()
    with pytest.raises(ValueError, match="corrupted file detected: bad.bin from http"):
        get_file("bad.bin", url + "data.bin", file_hash="0" * 64, progress=False)
    assert not (keras_home / "datasets" / "bad.bin").exists()
    # a cached copy with the wrong content is downloaded again, as Keras does
    stale = keras_home / "datasets" / "data.bin"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"old")
    sha = hashlib.sha256(data).hexdigest()
    assert open(get_file("data.bin", url + "data.bin", file_hash=sha), "rb").read() == data
    assert get_file("data.bin", url + "data.bin", file_hash="sha256:" + sha) == str(stale)


def test_get_file_offline_error_names_file_url_and_folder(keras_home):
    origin = _closed_port_url() + "weights.h5"
    with pytest.raises(OSError) as err:
        get_file("weights.h5", origin, cache_subdir="models", progress=False)
    message = str(err.value)
    folder = str(keras_home / "models")
    assert "weights.h5" in message and origin in message and folder in message
    # a Keras user's copy already in the cache is used offline
    os.makedirs(folder, exist_ok=True)
    (keras_home / "models" / "weights.h5").write_bytes(b"x")
    assert get_file("weights.h5", origin, cache_subdir="models") == os.path.join(
        folder, "weights.h5"
    )


def test_get_file_file_url_and_arguments(tmp_path, keras_home):
    source = tmp_path / "local.bin"
    source.write_bytes(b"local bytes")
    path = get_file("copy.bin", source.as_uri(), progress=False)
    assert open(path, "rb").read() == b"local bytes"
    with pytest.raises(ValueError, match="origin"):
        get_file("x.bin")
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        get_file(os.path.join("sub", "x.bin"), source.as_uri())
    with pytest.raises(ValueError, match="Can't parse the file name"):
        get_file(origin="http://127.0.0.1:9/")


def test_get_file_extract_as_keras_3(server, keras_home):
    url, _ = server
    folder = get_file("data.tar.gz", url + "data.tar.gz", extract=True, progress=False)
    assert folder == str(keras_home / "datasets" / "data_extracted")
    assert open(os.path.join(folder, "folder", "inner.txt")).read() == "inside"
    unnamed = get_file(origin=url + "data.tar.gz", extract=True, cache_subdir="other")
    assert unnamed == str(keras_home / "other" / "data.tar.gz")  # the folder, archive beside
    assert os.path.isfile(unnamed + "_archive")
    assert os.path.isfile(os.path.join(unnamed, "folder", "inner.txt"))
