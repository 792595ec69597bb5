"""Weights in Keras' h5 layouts, through h5py, read without trusting the file.

Keras 3's layout (``model.weights.h5`` inside a ``.keras`` zip, and ``.weights.h5`` files): a
group per layer named after its class in snake case with a counter per container
(``layers/conv2d``, ``layers/conv2d_1``, ``layers/sequential/layers/random_flip``), each with a
``vars`` group holding datasets ``"0"``, ``"1"``, ... in the layer's weight order; the optimizer's
variables under ``optimizer/vars``: the iteration count, the learning rate, then each trainable
weight's slots in order (RMSprop: velocity; Adam: momentum, velocity; SGD: momentum if any).

The legacy layout (Keras 2's ``.h5``, as in Keras' published ImageNet weight files) is read too:
the root attribute ``layer_names`` lists the layers, each group's attribute ``weight_names`` its
datasets, matched to the model's layers with weights by order (as Keras does).

Safety: every step from the root is a hard link (no soft or external links are followed), no
virtual dataset or external storage is read, every dataset's dtype and shape are checked against
the model before it is read, and it is read straight into its final array.
"""

from __future__ import annotations

import math
import re

import h5py
import numpy as np

from .._registry import to_snake_case

__all__ = ["write_weights", "read_weights", "open_h5", "declared_bytes", "stored_entry", "Invalid"]

_MAX_NAMES = 100_000  # entries of a legacy file's name lists


class Invalid(ValueError):
    pass


# --------------------------------------------------------------------------- the object tree
def _class_key(obj):
    return to_snake_case(type(obj)._config_class_name())


def _walk(model, prefix=""):
    """(path, layer) of every layer of ``model`` with its Keras h5 path, nested models
    included (their own path, then their layers')."""
    used = {}
    for layer in model.layers:
        key = _class_key(layer)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        path = f"{prefix}layers/{key}"
        yield path, layer
        if hasattr(layer, "_graph_layers"):
            yield from _walk(layer, path + "/")


def _own_weights(layer):
    """The weights a layer saves under its own group (a nested model saves none itself)."""
    return [] if hasattr(layer, "_graph_layers") else layer.weights


def _optimizer_slots(model):
    """(optimizer, [slot arrays in Keras' order]) of the model; slots that training has not
    made yet are made now (zeros, as Keras builds them)."""
    opt = model.optimizer
    params = [w for w, _ in model._trainable_weights_and_grads()]
    return opt, [s for p in params for s in opt._slots(p)]


# --------------------------------------------------------------------------- writing
def write_weights(model, fh, with_optimizer=True) -> None:
    """Write ``model``'s weights (and its optimizer's state when compiled) in Keras 3's layout
    to ``fh`` (a path or a binary file object)."""
    with h5py.File(fh, "w") as f:
        f.create_group("layers")
        for path, layer in _walk(model):
            group = f.create_group(path).create_group("vars")
            group.attrs["name"] = layer.name
            for i, w in enumerate(_own_weights(layer)):
                group.create_dataset(str(i), data=np.ascontiguousarray(w, dtype=np.float32))
            if hasattr(layer, "_graph_layers") and "layers" not in f[path]:
                f[path].create_group("layers")
        if with_optimizer and model.compiled and model.optimizer is not None:
            opt, slots = _optimizer_slots(model)
            group = f.create_group("optimizer").create_group("vars")
            group.attrs["name"] = to_snake_case(type(opt).__name__)
            group.create_dataset("0", data=np.int64(opt.iterations))
            group.create_dataset("1", data=np.float32(opt.learning_rate))
            for i, s in enumerate(slots, start=2):
                group.create_dataset(str(i), data=s)
        f.create_group("vars").attrs["name"] = model.name


# --------------------------------------------------------------------------- reading
def _child(group, name, what):
    """``group[name]`` reached through a hard link only."""
    try:
        link = group.get(name, getlink=True)
    except (KeyError, ValueError, OSError) as e:
        raise Invalid(f"{what}: unreadable entry {name!r} ({e})") from None
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise Invalid(f"{what}: {name!r} is a {type(link).__name__}; links are not followed")
    return group[name]


def _path(f, path, what):
    node = f
    for part in path.split("/"):
        if not isinstance(node, h5py.Group):
            raise Invalid(f"{what}: {path!r} is not a group")
        node = _child(node, part, what)
        if node is None:
            return None
    return node


def _check_dataset(ds, shape, kinds, what):
    if not isinstance(ds, h5py.Dataset):
        raise Invalid(f"{what}: not a dataset")
    if ds.is_virtual:
        raise Invalid(f"{what}: virtual datasets are not read")
    if ds.id.get_create_plist().get_external_count():
        raise Invalid(f"{what}: datasets stored in external files are not read")
    if ds.dtype.kind not in kinds or ds.dtype.itemsize > 8 or ds.dtype.fields is not None:
        raise Invalid(f"{what}: dtype {ds.dtype} where the model needs {'/'.join(kinds)} data")
    if tuple(ds.shape or ()) != tuple(shape):
        raise Invalid(f"{what}: shape {ds.shape} does not match the model's {tuple(shape)}")


def _read_into(ds, target, what):
    _check_dataset(ds, target.shape, "f", what)
    if ds.dtype != np.float32:
        raise Invalid(f"{what}: weights must be float32, found {ds.dtype}")
    if target.size:
        try:
            ds.read_direct(target)
        except (OSError, ValueError, TypeError) as e:
            raise Invalid(
                f"{what}: cannot read the data (truncated or corrupt file?): {e}"
            ) from None


def _vars(f, path, n, what):
    """The ``n`` datasets of the vars group at ``path`` (none when the group is absent and
    ``n`` is 0)."""
    group = _path(f, path + "/vars", what)
    if group is None:
        if n:
            raise Invalid(f"{what}: the file has no weights for it ({path}/vars is missing)")
        return []
    if not isinstance(group, h5py.Group):
        raise Invalid(f"{what}: {path}/vars is not a group")
    keys = sorted(group.keys(), key=lambda k: (len(k), k))
    if keys != [str(i) for i in range(n)]:
        raise Invalid(f"{what}: the file holds {len(keys)} weight arrays, the layer has {n}")
    return [_child(group, str(i), f"{what} weight {i}") for i in range(n)]


def _declared(datasets):
    return sum(4 * math.prod(ds.shape or ()) for ds in datasets)


def _read_keras3(f, model, staged, with_optimizer):
    plan = []  # (dataset, target, what)
    for path, layer in _walk(model):
        weights = _own_weights(layer)
        what = f"layer {layer.name!r} ({type(layer).__name__}, {path})"
        datasets = _vars(f, path, len(weights), what)
        for i, (ds, w) in enumerate(zip(datasets, weights)):
            _check_dataset(ds, w.shape, "f", f"{what} weight {i}")
            plan.append((ds, w, f"{what} weight {i}"))
    optimizer = _optimizer_plan(f, model) if with_optimizer else None
    _apply(model, plan, staged)
    if optimizer is not None:
        optimizer()


def _optimizer_plan(f, model):
    """A function that reads the optimizer state (checked first), or None without one."""
    if not model.compiled or model.optimizer is None or _path(f, "optimizer", "optimizer") is None:
        return None
    opt, slots = _optimizer_slots(model)
    group = _path(f, "optimizer/vars", "optimizer")
    if group is None or not len(group):
        return None
    what = f"optimizer {type(opt).__name__}"
    datasets = _vars(f, "optimizer", len(slots) + 2, what)
    _check_dataset(datasets[0], (), "iu", f"{what} iterations")
    _check_dataset(datasets[1], (), "f", f"{what} learning_rate")
    for i, (ds, s) in enumerate(zip(datasets[2:], slots)):
        _check_dataset(ds, s.shape, "f", f"{what} variable {i + 2}")

    def load():
        iterations = int(datasets[0][()])
        if iterations < 0:
            raise Invalid(f"{what}: negative iteration count")
        learning_rate = float(datasets[1][()])
        for i, (ds, s) in enumerate(zip(datasets[2:], slots)):
            _read_into(ds, s, f"{what} variable {i + 2}")
        opt.iterations = iterations
        opt.learning_rate = learning_rate

    return load


def _apply(model, plan, staged):
    """Reads each dataset into its weight (``staged``: into fresh arrays first, set together,
    so that a bad file leaves the model as it was)."""
    if not staged:
        for ds, w, what in plan:
            direct = w.dtype == np.float32 and w.flags.c_contiguous and w.flags.writeable
            if not direct:
                raise Invalid(f"{what}: weight array is not writable in place")
            _read_into(ds, w, what)
        return
    fresh = []
    for ds, w, what in plan:
        fresh.append(np.empty(w.shape, np.float32))
        _read_into(ds, fresh[-1], what)
    for (_, w, _), value in zip(plan, fresh):
        np.copyto(w, value)


def _names(attrs, key, what):
    value = attrs.get(key)
    if value is None:
        raise Invalid(f"{what}: attribute {key!r} is missing")
    value = np.asarray(value)
    if value.size == 0:
        return []
    if value.dtype.kind not in "SUO" or value.ndim != 1 or value.size > _MAX_NAMES:
        raise Invalid(f"{what}: attribute {key!r} must be a list of names")
    out = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist()]
    if not all(re.fullmatch(r"[\w./:-]{1,256}", n) for n in out):
        raise Invalid(f"{what}: attribute {key!r} holds an invalid name")
    return out


def _read_legacy(root, model, staged):
    """Keras 2's layout: layers with weights matched by order, each layer's weights in order."""
    layer_names = _names(root.attrs, "layer_names", "legacy h5 file")
    stored = []
    for name in layer_names:
        group = _child(root, name, "legacy h5 file")
        if group is None or not isinstance(group, h5py.Group):
            raise Invalid(f"legacy h5 file: layer group {name!r} is missing")
        weight_names = _names(group.attrs, "weight_names", f"layer {name!r}")
        if weight_names:
            stored.append((name, group, weight_names))
    layers = [layer for layer in model.layers if layer.weights]
    if len(stored) != len(layers):
        raise Invalid(
            f"the file holds weights for {len(stored)} layers but the model has {len(layers)} "
            "layers with weights"
        )
    plan = []
    for (name, group, weight_names), layer in zip(stored, layers):
        weights = layer.weights
        what = f"layer {layer.name!r} ({type(layer).__name__}; file layer {name!r})"
        if len(weight_names) != len(weights):
            raise Invalid(f"{what}: {len(weight_names)} weights in the file, {len(weights)} here")
        for wname, w in zip(weight_names, weights):
            ds = _path(group, wname, what)
            if ds is None:
                raise Invalid(f"{what}: dataset {wname!r} is missing")
            _check_dataset(ds, w.shape, "f", f"{what} weight {wname!r}")
            plan.append((ds, w, f"{what} weight {wname!r}"))
    _apply(model, plan, staged)


class _Window:
    """A read-only file object over ``size`` bytes of ``raw`` from ``start`` (an entry stored
    uncompressed in a zip), so h5py reads it in place: no copy of the entry in memory."""

    def __init__(self, raw, start, size):
        self._raw, self._start, self._size, self._pos = raw, start, size, 0

    def seekable(self):
        return True

    def readable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=0):
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self._size - self._pos))
        if not n:
            return 0
        self._raw.seek(self._start + self._pos)
        got = self._raw.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def read(self, n=-1):
        n = self._size - self._pos if n is None or n < 0 else n
        buf = bytearray(max(0, min(n, self._size - self._pos)))
        return bytes(buf[: self.readinto(buf)])


def stored_entry(raw, info):
    """A ``_Window`` over the zip entry ``info`` of the open archive file ``raw`` when it is
    stored uncompressed, else None."""
    if info.compress_type != 0 or info.flag_bits & 0x1:
        return None
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise Invalid(f"entry {info.filename!r}: bad local header")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw.seek(0, 2)
    if start + info.compress_size > raw.tell():
        raise Invalid(f"entry {info.filename!r} is truncated")
    return _Window(raw, start, info.file_size)


def open_h5(fh):
    """``h5py.File`` of ``fh`` (path or binary file object) for reading, or a clear error."""
    try:
        return h5py.File(fh, "r")
    except (OSError, ValueError) as e:
        raise Invalid(f"not a readable h5 file ({e})") from None


def declared_bytes(f) -> int:
    """The bytes of all datasets the open file declares (checked against a cap before the
    model is built or any weight is read)."""
    total = [0]

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            total[0] += obj.dtype.itemsize * math.prod(obj.shape or ())

    f.visititems(visit)  # visits objects reached through hard links only
    return total[0]


def read_weights(f, model, staged=True, with_optimizer=True) -> None:
    """Read weights in either Keras layout from the open h5 file ``f`` into the built
    ``model``, and the optimizer state when the file has one and the model is compiled."""
    legacy_root = _child(f, "model_weights", "h5 file") if "layer_names" not in f.attrs else f
    if legacy_root is not None and "layer_names" in legacy_root.attrs:
        _read_legacy(legacy_root, model, staged)
    else:
        _read_keras3(f, model, staged, with_optimizer)
