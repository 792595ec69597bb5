"""Saving and loading models as one ``.keras`` zip file (no pickle, no code execution).

``save_model`` writes Keras 3's format: ``metadata.json``, ``config.json`` (Keras'
serialization, ``keras_config.py``) and ``model.weights.h5`` (Keras' h5 layout with the
optimizer's variables, ``keras_h5.py``); ``save_weights`` writes ``.weights.h5`` in the same
layout. ``load_model`` reads files saved by Keras 3 or by fastconv, and the older fastconv
format below, so that no model saved earlier is lost.

The older fastconv archive layout (all entries stored by name; nothing is ever extracted):

* ``config.json``: ``{"format": "fastconv", "format_version": 1, "model": {"class_name",
  "config"}, "compile_config": {...} | null, "weights": [{"path", "shape", "dtype"}, ...]}``
* ``weights/<i>.npy``: weight ``i`` in ``model.weights`` order (Keras layouts, float32).

Loading accepts only layer classes registered in ``fastconv.layers.LAYER_REGISTRY`` (plus the
model classes), checks every weight's declared and actual shape and dtype against the rebuilt model,
reads arrays with ``allow_pickle=False`` after validating their headers, and caps the sizes of the
archive, of each entry and of the JSON. Any problem raises ``ValueError`` (``OSError`` for file
system errors such as a missing file). The optimizer state is not saved.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers.base import LAYER_REGISTRY, MODEL_REGISTRY, weight_budget
from ..layers.input_layer import InputLayer
from . import keras_config, keras_h5

if TYPE_CHECKING:
    from .model import Model

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_from_config"]

FORMAT = "fastconv"
FORMAT_VERSION = 1
KERAS_VERSION = "3.15.1"  # the Keras release whose files the tests check both ways
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# The most weight bytes a file may make loading allocate, unless the caller passes max_bytes.
MAX_WEIGHTS_BYTES = 2 * 1024**3
# A temporary file of our own naming left this long untouched belongs to no live save (a save
# writes its file without pauses of this length) and is removed by the next save into the folder.
STALE_TEMP_SECONDS = 3600
_TEMP_NAME = re.compile(r"^\.fastconv-[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp's names
MAX_ENTRIES = 100_000
MAX_LAYERS = 1_000  # far above any CNN here; bounds the work a hostile file can cause
_WEIGHT_PATH = re.compile(r"^weights/[0-9]{1,6}\.npy$")


class _Invalid(ValueError):
    pass


# --------------------------------------------------------------------------- config helpers
def _check_json_value(v, depth=0):
    if depth > 50:
        raise _Invalid("configuration nested too deeply")
    if isinstance(v, dict):
        for k, item in v.items():
            if not isinstance(k, str):
                raise _Invalid("configuration keys must be strings")
            _check_json_value(item, depth + 1)
    elif isinstance(v, list):
        for item in v:
            _check_json_value(item, depth + 1)
    elif not (v is None or isinstance(v, (str, int, float, bool))):
        raise _Invalid(f"unexpected value of type {type(v).__name__} in configuration")


def _layer_from_config(entry, path):
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise _Invalid(f"{path}: each layer must be an object with a string 'class_name'")
    cfg = entry.get("config")
    if not isinstance(cfg, dict):
        raise _Invalid(f"{path}: 'config' of layer must be an object")
    name = entry["class_name"]
    if name in ("Functional", "Model", "Sequential"):
        return model_from_config(entry, path)
    cls = LAYER_REGISTRY.get(name)
    if cls is None:
        raise _Invalid(
            f"{path}: unknown layer class {name!r}; fastconv loads only its own layers "
            f"({', '.join(sorted(LAYER_REGISTRY))})"
        )
    try:
        return cls.from_config(dict(cfg))
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise _Invalid(f"{path}: invalid configuration for layer {name}: {e}") from None


def model_from_config(config, path="model"):
    """Rebuild a model from ``{"class_name": "Functional"|"Sequential", "config": {...}}``."""
    _check_json_value(config)
    kind, cfg, name, trainable, entries = keras_config.model_header(config, path)
    try:
        if kind == "Sequential":
            model = MODEL_REGISTRY["Sequential"](name=name, trainable=trainable)
            for i, entry in enumerate(entries):
                model.add(_layer_from_config(entry, f"{path}.layers[{i}]"))
            return model
        if kind not in ("Functional", "Model"):
            raise _Invalid(f"{path}: unknown model class {kind!r}")
        if not entries:
            raise _Invalid(f"{path}: a functional model needs at least an InputLayer")
        layers = [_layer_from_config(e, f"{path}.layers[{i}]") for i, e in enumerate(entries)]
        if not isinstance(layers[0], InputLayer) or any(
            isinstance(layer, InputLayer) for layer in layers[1:]
        ):
            raise _Invalid(f"{path}: a functional model must start with its only InputLayer")
        t = layers[0].output
        for i, (entry, layer) in enumerate(zip(entries[1:], layers[1:]), start=1):
            if entry.get("inbound", i - 1) != i - 1:
                raise _Invalid(f"{path}: only chains of layers are supported")
            t = layer(t)
        functional = MODEL_REGISTRY["Functional"]
        return functional(inputs=layers[0].output, outputs=t, name=name, trainable=trainable)
    except _Invalid:
        raise
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise _Invalid(f"{path}: the architecture cannot be rebuilt: {e}") from None


# --------------------------------------------------------------------------- writing
def _npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _remove_stale_temporaries(folder, now):
    """Deletes the temporary files of saves killed mid-write (our own naming only) that are
    older than any live save could be; ``now`` is the file system's clock (a fresh file's mtime)."""
    for entry in os.scandir(folder):
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and (
                now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
            ):
                os.unlink(entry.path)
        except OSError:  # removed by another save meanwhile, or not ours to remove
            pass


def _fsync_folder(folder):
    """Makes a rename in ``folder`` durable (where the platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_archive(filepath, meta, weights, overwrite):
    """The older fastconv archive (``.weights.npz``), written atomically."""

    def write(fh, folder):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("config.json", json.dumps(meta, indent=1, allow_nan=False))
            for i, w in enumerate(weights):
                zf.writestr(f"weights/{i}.npy", _npy_bytes(w))

    _write_atomic(filepath, overwrite, write)


def _write_keras_archive(filepath, model, overwrite):
    """Keras 3's ``.keras`` zip (entries stored, as Keras writes them); the h5 part goes
    through a temporary file of our naming beside the model, so no copy of it is in memory."""
    config = json.dumps(keras_config.to_keras(model), allow_nan=False)
    metadata = {
        "keras_version": KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "saved_by": "fastconv",
    }

    def write(fh, folder):
        hfd, h5_tmp = tempfile.mkstemp(prefix=".fastconv-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(hfd, "w+b") as h5fh:
                keras_h5.write_weights(model, h5fh)
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("metadata.json", json.dumps(metadata))
                zf.writestr("config.json", config)
                zf.write(h5_tmp, "model.weights.h5")
        finally:
            os.unlink(h5_tmp)

    _write_atomic(filepath, overwrite, write)


def _write_atomic(filepath, overwrite, write):
    """Calls ``write(file, folder)`` on a temporary file beside ``filepath``, fsyncs it, renames
    it over ``filepath`` and fsyncs the folder: a crash at any moment leaves the old or the new
    file."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    folder = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save {filepath}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".fastconv-", suffix=".tmp", dir=folder)
    try:
        _remove_stale_temporaries(folder, os.fstat(fd).st_mtime)
        with os.fdopen(fd, "w+b") as fh:
            write(fh, folder)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; a saved model gets the usual permissions (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, filepath)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _weights_manifest(model):
    return [
        {"path": f"weights/{i}.npy", "shape": list(w.shape), "dtype": "float32"}
        for i, w in enumerate(model.weights)
    ]


def save_model(model: Model, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model`` (architecture, compile settings, weights) to one ``.keras`` zip file."""
    path = os.fspath(filepath)
    if not path.endswith(".keras"):
        raise ValueError(
            "Invalid filepath extension for saving. Please add a `.keras` extension for the native "
            f"format. Received: filepath={path}"
        )
    model._require_built()
    _write_keras_archive(path, model, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Weights (and the optimizer's state) in Keras 3's ``.weights.h5`` layout; a name ending
    in ``.weights.npz`` writes the older fastconv archive of the weights instead."""
    path = os.fspath(filepath)
    if path.endswith(".weights.h5"):
        model._require_built()
        _write_atomic(path, overwrite, lambda fh, folder: keras_h5.write_weights(model, fh))
        return
    if not path.endswith(".weights.npz"):
        raise ValueError(
            f"The filename must end in `.weights.h5` (or `.weights.npz`). Received: filepath={path}"
        )
    model._require_built()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": None,
        "compile_config": None,
        "weights": _weights_manifest(model),
    }
    _write_archive(path, meta, model.weights, overwrite)


# --------------------------------------------------------------------------- reading
def _read_entry(zf, info, cap):
    if info.file_size > cap:
        raise _Invalid(f"entry {info.filename!r} is too large ({info.file_size} bytes)")
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap or len(data) != info.file_size:
        raise _Invalid(f"entry {info.filename!r} has an inconsistent size")
    return data


def _read_npy_header(fh, name):
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fh)
    except Exception as e:
        raise _Invalid(f"{name}: not a valid .npy array ({e})") from None
    raise _Invalid(f"{name}: unsupported .npy version {version}")


def _read_npy_into(zf, info, target):
    """Reads the .npy entry ``info`` straight into ``target`` (C-contiguous float32 of the
    shape the model expects), after checking its header and size: no copy of the bytes."""
    name = info.filename
    if info.file_size > target.nbytes + 65536:  # the header is at most 64 KiB
        raise _Invalid(f"entry {name!r} is too large ({info.file_size} bytes)")
    with zf.open(info) as fh:
        shape, fortran, dtype = _read_npy_header(fh, name)
        if dtype.hasobject or dtype != np.dtype("<f4"):
            raise _Invalid(f"{name}: weights must be little-endian float32, found dtype {dtype}")
        if tuple(shape) != target.shape:
            raise _Invalid(f"{name}: shape {tuple(shape)} is not the model's {target.shape}")
        if info.file_size - fh.tell() != target.nbytes:
            raise _Invalid(f"{name}: array data is truncated or has trailing bytes")
        into = np.empty(target.shape[::-1], np.float32) if fortran else target
        view, done = memoryview(into).cast("B"), 0
        while done < into.nbytes:  # in chunks: zipfile's readinto reads a bytes copy first
            n = fh.readinto(view[done : done + (1 << 20)])
            if not n:
                raise _Invalid(f"{name}: array data is truncated")
            done += n
        if fh.read(1):  # reading to the end also checks the entry's CRC
            raise _Invalid(f"{name}: array data has trailing bytes")
    if fortran:
        target[...] = into.T


def _open_archive(filepath, max_bytes):
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file or directory found at {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a .keras model file")
    size = os.path.getsize(path)
    if size > max_bytes + MAX_CONFIG_BYTES:
        raise _Invalid(f"{path} is too large to be a fastconv model file ({size} bytes)")
    try:
        zf = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise _Invalid(f"{path} is not a valid fastconv model file (not a zip archive)") from None
    return zf


def _read_meta(zf, max_bytes):
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _Invalid("too many entries in the archive")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _Invalid("duplicate entries in the archive")
    by_name = {i.filename: i for i in infos}
    if "config.json" not in by_name:
        raise _Invalid("config.json is missing: not a fastconv model file")
    total = sum(i.file_size for i in infos)
    if total > max_bytes + MAX_CONFIG_BYTES:
        raise _Invalid(f"archive expands to {total} bytes, above the limit")
    raw = _read_entry(zf, by_name["config.json"], MAX_CONFIG_BYTES)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Invalid(f"config.json is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Invalid("config.json does not describe a fastconv model")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _Invalid(f"unsupported format_version {meta.get('format_version')!r}")
    manifest = meta.get("weights")
    if not isinstance(manifest, list):
        raise _Invalid("config.json: 'weights' must be a list")
    for i, entry in enumerate(manifest):
        if (
            not isinstance(entry, dict)
            or entry.get("path") != f"weights/{i}.npy"
            or not _WEIGHT_PATH.match(entry["path"])
            or not isinstance(entry.get("shape"), list)
            or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in entry["shape"]
            )
            or entry.get("dtype") != "float32"
        ):
            raise _Invalid(f"config.json: malformed weight entry {i}")
        if entry["path"] not in by_name:
            raise _Invalid(f"weight file {entry['path']} is missing from the archive")
    return meta, by_name


def _declared_bytes(manifest, max_bytes):
    """The weight bytes the file declares, refused above ``max_bytes`` before anything is
    allocated."""
    declared = 4 * sum(math.prod(e["shape"]) for e in manifest)
    if declared > max_bytes:
        raise _Invalid(
            f"the file declares {declared:,} bytes of weights, above max_bytes={max_bytes:,}; "
            "pass a larger max_bytes to load it"
        )
    return declared


def _restore_weights(model, zf, by_name, manifest, staged):
    """Reads every weight straight into its final buffer: the model's own arrays, or with
    ``staged`` fresh arrays handed to set_weights, so that a bad file leaves the model as it was."""
    params = model.weights
    if len(manifest) != len(params):
        raise _Invalid(
            f"the file holds {len(manifest)} weight arrays but the model has {len(params)}"
        )
    for i, (entry, p) in enumerate(zip(manifest, params)):
        if tuple(entry["shape"]) != p.shape:
            raise _Invalid(
                f"weight {i}: declared shape {tuple(entry['shape'])} does not match the model's "
                f"{p.shape}"
            )
    targets = []
    for entry, p in zip(manifest, params):
        direct = not staged and p.dtype == np.float32 and p.flags.c_contiguous and p.flags.writeable
        targets.append(p if direct else np.empty(p.shape, np.float32))
        _read_npy_into(zf, by_name[entry["path"]], targets[-1])
    if any(t is not p for t, p in zip(targets, params)):
        model.set_weights(targets)


def _guard(fn, path):
    try:
        return fn()
    except (_Invalid, keras_config.Invalid, keras_h5.Invalid) as e:
        raise ValueError(f"Cannot load {os.fspath(path)!r}: {e}") from None
    except OSError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        KeyError,
        TypeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as e:
        raise ValueError(
            f"Cannot load {os.fspath(path)!r}: corrupt or invalid model file ({type(e).__name__}: "
            f"{e})"
        ) from None


def _max_bytes(max_bytes):
    if max_bytes is None:
        return MAX_WEIGHTS_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an int, got {max_bytes!r}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    return int(max_bytes)


def load_model(
    filepath: str | os.PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
    max_bytes: int | None = None,
) -> Model:
    """Rebuild a model saved with ``model.save(path)`` (architecture, weights, compile settings).

    ``max_bytes`` caps the weight bytes the file may make fastconv allocate (default
    ``MAX_WEIGHTS_BYTES``, 2 GiB); the file's declared sizes are checked against it before the
    model is built. Each weight is read straight into the new model's own array.
    """
    if custom_objects:
        raise ValueError("fastconv does not load custom objects: only its own layers")
    max_bytes = _max_bytes(max_bytes)

    def run():
        zf = _open_archive(filepath, max_bytes)
        with zf:
            if _is_keras_archive(zf):
                return _load_keras_archive(zf, max_bytes, compile)
            meta, by_name = _read_meta(zf, max_bytes)
            manifest = meta["weights"]
            declared = _declared_bytes(manifest, max_bytes)
            with weight_budget(declared // 4):
                model = model_from_config(meta.get("model"))
            _restore_weights(model, zf, by_name, manifest, staged=False)
            cc = meta.get("compile_config")
            if compile and cc is not None:
                _compile_from_config(model, cc)
            return model

    return _guard(run, filepath)


def _is_keras_archive(zf):
    """Keras 3's archives (ours included) have ``metadata.json``; the older fastconv ones not."""
    return "metadata.json" in zf.namelist()


def _keras_h5_entry(zf, max_bytes):
    """A file object over ``model.weights.h5`` in the archive, read in place when stored."""
    info = next((i for i in zf.infolist() if i.filename == "model.weights.h5"), None)
    if info is None:
        raise _Invalid("model.weights.h5 is missing from the archive")
    if info.file_size > max_bytes + MAX_CONFIG_BYTES:
        raise _Invalid(f"model.weights.h5 is too large ({info.file_size:,} bytes)")
    window = keras_h5.stored_entry(zf.fp, info)
    return window if window is not None else zf.open(info)


def _load_keras_archive(zf, max_bytes, compile):
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES or len({i.filename for i in infos}) != len(infos):
        raise _Invalid("too many or duplicate entries in the archive")
    by_name = {i.filename: i for i in infos}
    if "config.json" not in by_name:
        raise _Invalid("config.json is missing from the archive")
    raw = _read_entry(zf, by_name["config.json"], MAX_CONFIG_BYTES)
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Invalid(f"config.json is not valid JSON: {e}") from None
    _check_json_value(config)
    with keras_h5.open_h5(_keras_h5_entry(zf, max_bytes)) as f:
        declared = keras_h5.declared_bytes(f)
        if declared > max_bytes:
            raise _Invalid(
                f"the file declares {declared:,} bytes of weights, above max_bytes="
                f"{max_bytes:,}; pass a larger max_bytes to load it"
            )
        with weight_budget(declared // 4):
            model = keras_config.model_from_keras(config)
        if compile and isinstance(config, dict):
            keras_config.compile_from_keras(model, config.get("compile_config"))
        keras_h5.read_weights(f, model, staged=False, with_optimizer=compile)
    return model


def _load_weights_h5(model, path, max_bytes):
    size = os.path.getsize(path)
    if size > max_bytes + MAX_CONFIG_BYTES:
        raise _Invalid(f"{path} is too large ({size:,} bytes) for max_bytes={max_bytes:,}")
    with keras_h5.open_h5(path) as f:
        keras_h5.read_weights(f, model, staged=True)


def _compile_from_config(model, cc):
    if not isinstance(cc, dict):
        raise _Invalid("compile_config must be an object")
    _check_json_value(cc)
    metrics = cc.get("metrics") or []
    if not isinstance(metrics, list):
        raise _Invalid("compile_config.metrics must be a list")
    try:
        model.compile(optimizer=cc.get("optimizer"), loss=cc.get("loss"), metrics=metrics)
    except (TypeError, ValueError, KeyError) as e:
        raise _Invalid(f"invalid compile settings: {e}") from None


def load_weights(model, filepath, max_bytes=None):
    """Load weights saved by ``save_weights`` (or ``save``) into a built model.

    ``max_bytes`` caps the weight bytes the file may make fastconv allocate (see load_model).
    The weights are read into fresh arrays first, so a bad file leaves the model unchanged.
    """
    max_bytes = _max_bytes(max_bytes)

    def run():
        model._require_built()
        if os.fspath(filepath).endswith(".h5"):
            if not os.path.exists(filepath):
                raise FileNotFoundError(f"No file or directory found at {os.fspath(filepath)}")
            return _load_weights_h5(model, os.fspath(filepath), max_bytes)
        zf = _open_archive(filepath, max_bytes)
        with zf:
            if _is_keras_archive(zf):
                with keras_h5.open_h5(_keras_h5_entry(zf, max_bytes)) as f:
                    return keras_h5.read_weights(f, model, staged=True)
            meta, by_name = _read_meta(zf, max_bytes)
            _declared_bytes(meta["weights"], max_bytes)
            _restore_weights(model, zf, by_name, meta["weights"], staged=True)

    _guard(run, filepath)
