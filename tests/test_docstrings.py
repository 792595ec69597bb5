"""Every public class and function of the training API has a docstring (its own or one from a
fastconv base class it overrides), the main methods document every argument, and the package
says it is typed (PEP 561's ``py.typed``)."""

from __future__ import annotations

import inspect
from importlib import resources

import fastconv
import pytest
from fastconv import callbacks, layers, losses, metrics, models, optimizers

MODULES = {
    "fastconv": fastconv,
    "layers": layers,
    "optimizers": optimizers,
    "losses": losses,
    "metrics": metrics,
    "callbacks": callbacks,
    "models": models,
}


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith(
            "fastconv"
        ):
            yield name, obj


def _own_doc(cls, name):
    """The docstring of ``cls.name``, or of the nearest base class's ``name``."""
    for klass in cls.__mro__:
        attr = vars(klass).get(name)
        if attr is None:
            continue
        func = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
        doc = getattr(func, "__doc__", None)
        if doc and doc.strip():
            return doc
    return None


def _undocumented():
    missing, seen = [], set()
    for module_name, module in MODULES.items():
        for name, obj in _public(module):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if not (obj.__doc__ or "").strip():  # its own, not a base class's
                missing.append(f"{module_name}.{name}")
            if not inspect.isclass(obj):
                continue
            for attr_name, attr in vars(obj).items():
                if attr_name.startswith("_"):
                    continue
                func = getattr(attr, "__func__", attr)
                if (inspect.isfunction(func) or isinstance(attr, property)) and not _own_doc(
                    obj, attr_name
                ):
                    missing.append(f"{obj.__module__}.{obj.__qualname__}.{attr_name}")
    return missing, seen


def test_every_public_class_and_function_of_the_training_api_has_a_docstring():
    missing, seen = _undocumented()
    assert len(seen) > 40  # the walk found the API (layers, models, optimizers, ...)
    assert not missing, f"{len(missing)} without a docstring: {missing}"


def test_the_walk_finds_a_missing_docstring(monkeypatch):
    class Undocumented(layers.Layer):
        def new_public_method(self):
            return 1

    Undocumented.__doc__ = None
    Undocumented.__module__ = "fastconv.layers.undocumented"
    monkeypatch.setattr(layers, "Undocumented", Undocumented, raising=False)
    monkeypatch.setattr(layers, "__all__", list(layers.__all__) + ["Undocumented"])
    missing, _ = _undocumented()
    assert "layers.Undocumented" in missing
    assert any(m.endswith("Undocumented.new_public_method") for m in missing)


@pytest.mark.parametrize(
    "method",
    [
        fastconv.Model.compile,
        fastconv.Model.fit,
        fastconv.Model.evaluate,
        fastconv.Model.predict,
        fastconv.Model.save,
        fastconv.Model.save_weights,
        fastconv.Model.load_weights,
        fastconv.Model.set_weights,
        fastconv.Model.summary,
        fastconv.callbacks.LearningRateScheduler,
        fastconv.optimizers.RMSprop,
        fastconv.optimizers.Adam,
        fastconv.optimizers.SGD,
    ],
)
def test_main_methods_document_every_argument(method):
    doc = inspect.getdoc(method)
    assert "Args:" in doc
    target = method.__init__ if inspect.isclass(method) else method
    for name, p in inspect.signature(target).parameters.items():
        if name == "self" or p.kind is p.VAR_KEYWORD:
            continue
        assert name in doc, f"{method.__qualname__}: argument {name!r} is not documented"


def test_the_package_is_typed():
    assert resources.files("fastconv").joinpath("py.typed").is_file()
