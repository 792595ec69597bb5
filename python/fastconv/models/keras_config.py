"""Keras 3's ``config.json``, both ways: a fastconv model as Keras serializes it, and a model
rebuilt from what Keras wrote.

Keras' serialization of an object is ``{"module", "class_name", "config", "registered_name"}``
(plus ``build_config`` for layers, ``compile_config`` for the top model; a functional model's
layers add ``name`` and ``inbound_nodes``). Reading accepts only the model classes and the layer
classes fastconv registers, by class name: ``module`` is never imported and no code comes from a
file. Keras keys that do not change the computation (regularizers and constraints set to None,
float32 dtype policies given as dicts, build and compile details) are dropped; anything else that
fastconv cannot compute is refused with a message naming the layer and its class.
"""

from __future__ import annotations

from typing import Any

from .. import initializers as _init
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..layers.base import LAYER_REGISTRY, MODEL_REGISTRY
from ..layers.input_layer import InputLayer

__all__ = ["to_keras", "compile_to_keras", "model_from_keras", "compile_from_keras", "Invalid"]

MAX_LAYERS = 1_000  # far above any CNN here; bounds the work a hostile file can cause
_FLOAT32_POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}
# Keras arguments that change nothing when None; any other value is refused by name.
_NONE_ONLY = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "lora_rank",
    "lora_alpha",
    "quantization_config",
)
_INITIALIZER_KEYS = ("kernel_initializer", "bias_initializer")


class Invalid(ValueError):
    """A configuration that fastconv cannot rebuild (the message says why)."""


# --------------------------------------------------------------------------- writing
def _keras_object(module, obj_or_name, registry_get):
    obj = registry_get(obj_or_name) if isinstance(obj_or_name, (str, dict)) else obj_or_name
    return {
        "module": module,
        "class_name": type(obj).__name__,
        "config": obj.get_config(),
        "registered_name": None,
    }


def _layer_to_keras(layer) -> dict[str, Any]:
    if hasattr(layer, "_graph_layers"):  # a nested model
        return to_keras(layer, top=False)
    cfg = layer.get_config()
    if isinstance(layer, InputLayer):
        cfg = dict(cfg, sparse=False)
    else:
        cfg["dtype"] = dict(_FLOAT32_POLICY)
        for key in _INITIALIZER_KEYS:
            if key in cfg:
                cfg[key] = _keras_object("keras.initializers", cfg[key], _init.get)
    entry = {
        "module": "keras.layers",
        "class_name": type(layer)._config_class_name(),
        "config": cfg,
        "registered_name": None,
    }
    if not isinstance(layer, InputLayer) and layer._build_input_shape is not None:
        entry["build_config"] = {"input_shape": list(layer._build_input_shape)}
    return entry


def _tensor_ref(tensor) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": list(tensor.shape),
            "dtype": "float32",
            "keras_history": [tensor._keras_history[0].name, 0, 0],
        },
    }


def to_keras(model, top: bool = True) -> dict[str, Any]:
    """``model`` serialized as Keras 3 writes it in ``config.json`` (with ``compile_config``
    for the top model)."""
    layers = model._graph_layers
    if model._config_class_name() == "Sequential":
        cfg = {
            "name": model.name,
            "trainable": model.trainable,
            "dtype": dict(_FLOAT32_POLICY),
            "layers": [_layer_to_keras(layer) for layer in layers],
            "build_input_shape": list(layers[0].output.shape),
        }
        entry = {"module": "keras", "class_name": "Sequential", "config": cfg}
        entry.update(registered_name=None, build_config={"input_shape": cfg["build_input_shape"]})
    else:
        entries = []
        for layer in layers:
            e = _layer_to_keras(layer)
            e["name"] = layer.name
            inbound = layer._inbound
            e["inbound_nodes"] = (
                [] if inbound is None else [{"args": [_tensor_ref(inbound)], "kwargs": {}}]
            )
            entries.append(e)
        outputs = [[t._keras_history[0].name, 0, 0] for t in model.outputs]
        cfg = {
            "name": model.name,
            "trainable": model.trainable,
            "layers": entries,
            "input_layers": [layers[0].name, 0, 0],
            "output_layers": outputs[0] if len(outputs) == 1 else outputs,
        }
        entry = {"module": "keras.src.models.functional", "class_name": "Functional"}
        entry.update(config=cfg, registered_name="Functional", build_config={"input_shape": None})
    if top:
        entry["compile_config"] = compile_to_keras(model)
    return entry


def compile_to_keras(model) -> dict[str, Any] | None:
    """The model's compile settings as Keras' ``compile_config`` (None when not compiled)."""
    if not model.compiled:
        return None
    loss = model.loss
    if not isinstance(loss, str) and model._loss is not None:
        loss = _keras_object("keras.losses", model._loss, _losses.get)
    metrics = [
        m if isinstance(m, str) else dict(m, module="keras.metrics", registered_name=None)
        for m in model._compile_config["metrics"]
    ]
    return {
        "optimizer": _keras_object("keras.optimizers", model.optimizer, _optimizers.get),
        "loss": loss,
        "loss_weights": None,
        "metrics": metrics,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


# --------------------------------------------------------------------------- reading
def _plain(obj, what):
    """A Keras-serialized object as ``{"class_name", "config"}`` (no module is imported)."""
    if isinstance(obj, str) or obj is None:
        return obj
    if not isinstance(obj, dict) or not isinstance(obj.get("class_name"), str):
        raise Invalid(f"{what}: expected a name or a serialized object, found {obj!r:.200}")
    if obj.get("registered_name") not in (None, obj["class_name"]):
        raise Invalid(f"{what}: custom object {obj['registered_name']!r} is not supported")
    cfg = obj.get("config") or {}
    if not isinstance(cfg, dict):
        raise Invalid(f"{what}: 'config' must be an object")
    return {"class_name": obj["class_name"], "config": dict(cfg)}


def _initializer(obj, what):
    obj = _plain(obj, what)
    if isinstance(obj, dict):  # Keras adds arguments that are None by default (input_axes, ...)
        obj["config"] = {k: v for k, v in obj["config"].items() if v is not None or k == "seed"}
    return obj


def _layer_config(class_name, cfg, what):
    cfg = {k: v for k, v in cfg.items() if k not in ("shared_object_id",)}
    for key in _NONE_ONLY:
        if key in cfg:
            if cfg.pop(key) is not None:
                raise Invalid(f"{what}: `{key}` is not supported by fastconv's {class_name}")
    for key in _INITIALIZER_KEYS:
        if key in cfg:
            cfg[key] = _initializer(cfg[key], f"{what}.{key}")
    if class_name == "InputLayer":
        for key in ("optional", "sparse", "ragged"):
            if cfg.pop(key, False):
                raise Invalid(f"{what}: InputLayer with `{key}=True` is not supported")
    return cfg


def _layer_from_keras(entry, what):
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise Invalid(f"{what}: each layer must be an object with a string 'class_name'")
    name = entry["class_name"]
    if name in ("Functional", "Model", "Sequential"):
        return model_from_keras(entry, what)
    cfg = entry.get("config")
    if not isinstance(cfg, dict):
        raise Invalid(f"{what}: the 'config' of a {name} layer must be an object")
    cls = LAYER_REGISTRY.get(name)
    if cls is None or entry.get("registered_name") not in (None, name):
        raise Invalid(
            f"{what}: layer class {entry.get('registered_name') or name!r} (layer "
            f"{cfg.get('name')!r}) is not one fastconv can compute; it computes "
            f"{', '.join(sorted(LAYER_REGISTRY))}"
        )
    what = f"{what} ({name} {cfg.get('name')!r})"
    try:
        return cls.from_config(_layer_config(name, cfg, what))
    except Invalid:
        raise
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise Invalid(f"{what}: configuration not supported: {e}") from None


def _history_name(node, what):
    """The name of the layer whose output a Keras inbound node reads (Keras 3, or the older
    ``[[name, node, tensor, kwargs]]`` form)."""
    if isinstance(node, dict):
        args = node.get("args")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            raise Invalid(f"{what}: fastconv layers take exactly one input tensor")
        hist = (args[0].get("config") or {}).get("keras_history")
    elif isinstance(node, list) and len(node) == 1 and isinstance(node[0], list):
        hist = node[0]
    else:
        raise Invalid(f"{what}: unrecognised inbound node")
    if not isinstance(hist, list) or not hist or not isinstance(hist[0], str):
        raise Invalid(f"{what}: unrecognised inbound node")
    if len(hist) > 1 and hist[1:3] != [0, 0]:
        raise Invalid(f"{what}: shared layers and layers with several outputs are not supported")
    return hist[0]


def _endpoint_names(value, what):
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, list) and v and isinstance(v[0], str) for v in value
    ):
        raise Invalid(f"{what}: malformed input_layers / output_layers")
    return [v[0] for v in value]


def _functional_from_keras(cfg, entries, what, name, trainable):
    tensors = {}
    for i, entry in enumerate(entries):
        where = f"{what}.layers[{i}]"
        layer = _layer_from_keras(entry, where)
        nodes = entry.get("inbound_nodes") or []
        if isinstance(layer, InputLayer):
            tensors[layer.name] = layer.output
            continue
        if not isinstance(nodes, list) or len(nodes) != 1:
            raise Invalid(f"{where}: a layer must be called exactly once (found {len(nodes)})")
        source = _history_name(nodes[0], where)
        if source not in tensors:
            raise Invalid(f"{where}: input {source!r} is not the output of an earlier layer")
        tensors[layer.name] = layer(tensors[source])
    inputs = _endpoint_names(cfg.get("input_layers"), what)
    outputs = _endpoint_names(cfg.get("output_layers"), what)
    missing = [n for n in inputs + outputs if n not in tensors]
    if missing or len(inputs) != 1:
        raise Invalid(f"{what}: one input layer and known output layers are needed ({missing})")
    functional = MODEL_REGISTRY["Functional"]
    outs = [tensors[n] for n in outputs]
    return functional(
        inputs=tensors[inputs[0]],
        outputs=outs[0] if len(outs) == 1 else outs,
        name=name,
        trainable=trainable,
    )


def model_header(config, what="model"):
    """(class name, config, name, trainable, layer entries) of a model's configuration, checked:
    the part Keras' serialization and fastconv's older one share."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise Invalid(f"{what}: a model configuration must be an object with a 'config' object")
    cfg = config["config"]
    name = cfg.get("name")
    if name is not None and not isinstance(name, str):
        raise Invalid(f"{what}: the model name must be a string")
    trainable = cfg.get("trainable", True)
    if not isinstance(trainable, bool):
        raise Invalid(f"{what}: 'trainable' must be a boolean")
    entries = cfg.get("layers")
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        raise Invalid(f"{what}: 'layers' must be a list of at most {MAX_LAYERS} layers")
    return config.get("class_name"), cfg, name, trainable, entries


def model_from_keras(config, what="model"):
    """Rebuild a model from Keras' serialization of a ``Functional`` or ``Sequential``."""
    kind, cfg, name, trainable, entries = model_header(config, what)
    try:
        if kind == "Sequential":
            model = MODEL_REGISTRY["Sequential"](name=name, trainable=trainable)
            for i, entry in enumerate(entries):
                model.add(_layer_from_keras(entry, f"{what}.layers[{i}]"))
            shape = cfg.get("build_input_shape")
            if not model._graph_layers and isinstance(shape, list):
                model.build(tuple(shape))
            return model
        if kind not in ("Functional", "Model"):
            raise Invalid(f"{what}: model class {kind!r} is not supported (subclassed models)")
        return _functional_from_keras(cfg, entries, what, name, trainable)
    except Invalid:
        raise
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as e:
        raise Invalid(f"{what}: the architecture cannot be rebuilt: {e}") from None


def compile_from_keras(model, cc) -> None:
    """Compile ``model`` from Keras' ``compile_config`` (an empty or null one leaves it as is)."""
    if not cc:
        return
    if not isinstance(cc, dict):
        raise Invalid("compile_config must be an object")
    for key in ("loss_weights", "weighted_metrics"):
        if cc.get(key):
            raise Invalid(f"compile_config: `{key}` is not supported")
    optimizer = _plain(cc.get("optimizer"), "compile_config.optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer["config"].get("learning_rate"), dict):
        raise Invalid("compile_config.optimizer: learning-rate schedules are not supported")
    loss = _plain(cc.get("loss"), "compile_config.loss")
    if isinstance(loss, dict):
        loss["config"] = {k: v for k, v in loss["config"].items() if k != "dtype" or v is None}
        loss["config"].pop("dtype", None)
    metrics = cc.get("metrics") or []
    if not isinstance(metrics, list):
        raise Invalid("compile_config.metrics must be a list")
    metrics = [_plain(m, "compile_config.metrics") for m in metrics]
    try:
        model.compile(
            optimizer=optimizer or "rmsprop",
            loss=loss,
            metrics=[m if isinstance(m, str) else _metrics.get(m) for m in metrics],
        )
    except (TypeError, ValueError, KeyError) as e:
        raise Invalid(f"compile settings not supported: {e}") from None
