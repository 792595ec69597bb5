"""Saving and loading models as one ``.keras`` zip file (no pickle, no code execution).

Archive layout (all entries stored by name; nothing is ever extracted to disk):

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

from ..layers.base import LAYER_REGISTRY, MODEL_REGISTRY, serialize_layer, weight_budget
from ..layers.input_layer import InputLayer

if TYPE_CHECKING:
    from .model import Model

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_from_config"]

FORMAT = "fastconv"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_WEIGHTS_BYTES = 8 * 1024**3  # total uncompressed weight bytes accepted
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
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise _Invalid(f"{path}: model configuration must be an object with a 'config' object")
    _check_json_value(config)
    kind = config.get("class_name")
    cfg = config["config"]
    name = cfg.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid(f"{path}: model name must be a string")
    trainable = cfg.get("trainable", True)
    if not isinstance(trainable, bool):
        raise _Invalid(f"{path}: 'trainable' must be a boolean")
    entries = cfg.get("layers")
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        raise _Invalid(f"{path}: 'layers' must be a list of at most {MAX_LAYERS} layers")
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


def _write_archive(filepath, meta, weights, overwrite):
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    folder = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save {filepath}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".fastconv-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("config.json", json.dumps(meta, indent=1, allow_nan=False))
                for i, w in enumerate(weights):
                    zf.writestr(f"weights/{i}.npy", _npy_bytes(w))
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
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": serialize_layer(model),
        "compile_config": model._compile_config,
        "weights": _weights_manifest(model),
    }
    _write_archive(path, meta, model.weights, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Weights only (same archive, no architecture); ``filepath`` ends in ``.weights.npz``."""
    path = os.fspath(filepath)
    if not path.endswith(".weights.npz"):
        raise ValueError(f"The filename must end in `.weights.npz`. Received: filepath={path}")
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


def _parse_npy(data, name, expected_shape):
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise _Invalid(f"{name}: unsupported .npy version {version}")
    except _Invalid:
        raise
    except Exception as e:
        raise _Invalid(f"{name}: not a valid .npy array ({e})") from None
    if dtype.hasobject or dtype != np.dtype("<f4"):
        raise _Invalid(f"{name}: weights must be little-endian float32, found dtype {dtype}")
    if tuple(shape) != tuple(expected_shape):
        raise _Invalid(f"{name}: shape {tuple(shape)} does not match the model ({expected_shape})")
    if len(data) - buf.tell() != math.prod(shape) * 4:
        raise _Invalid(f"{name}: array data is truncated or has trailing bytes")
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if fortran:
        arr = np.ascontiguousarray(arr)
    return arr


def _open_archive(filepath):
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file or directory found at {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a .keras model file")
    size = os.path.getsize(path)
    if size > MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES:
        raise _Invalid(f"{path} is too large to be a fastconv model file ({size} bytes)")
    try:
        zf = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise _Invalid(f"{path} is not a valid fastconv model file (not a zip archive)") from None
    return zf


def _read_meta(zf):
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
    if total > MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES:
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


def _restore_weights(model, zf, by_name, manifest):
    params = model.weights
    if len(manifest) != len(params):
        raise _Invalid(
            f"the file holds {len(manifest)} weight arrays but the model has {len(params)}"
        )
    arrays = []
    for i, (entry, p) in enumerate(zip(manifest, params)):
        if tuple(entry["shape"]) != p.shape:
            raise _Invalid(
                f"weight {i}: declared shape {tuple(entry['shape'])} does not match the model's "
                f"{p.shape}"
            )
        data = _read_entry(zf, by_name[entry["path"]], p.size * 4 + 65536)
        arrays.append(_parse_npy(data, entry["path"], p.shape))
    model.set_weights(arrays)


def _guard(fn, path):
    try:
        return fn()
    except _Invalid as e:
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


def load_model(
    filepath: str | os.PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> Model:
    """Rebuild a model saved with ``model.save(path)`` (architecture, weights, compile settings)."""
    if custom_objects:
        raise ValueError("fastconv does not load custom objects: only its own layers")

    def run():
        zf = _open_archive(filepath)
        with zf:
            meta, by_name = _read_meta(zf)
            manifest = meta["weights"]
            declared = sum(math.prod(e["shape"]) for e in manifest)
            with weight_budget(declared):
                model = model_from_config(meta.get("model"))
            _restore_weights(model, zf, by_name, manifest)
            cc = meta.get("compile_config")
            if compile and cc is not None:
                _compile_from_config(model, cc)
            return model

    return _guard(run, filepath)


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


def load_weights(model, filepath):
    """Load weights saved by ``save_weights`` (or ``save``) into a built model."""

    def run():
        model._require_built()
        zf = _open_archive(filepath)
        with zf:
            meta, by_name = _read_meta(zf)
            _restore_weights(model, zf, by_name, meta["weights"])

    _guard(run, filepath)
