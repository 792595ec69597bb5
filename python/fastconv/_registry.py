"""One registry for the objects that Keras names by string or config dict: losses, optimizers,
metrics, initializers (``get`` and ``serialize`` of each module are a ``Registry``'s)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Registry", "to_snake_case"]


def to_snake_case(name: str) -> str:
    """``SparseCategoricalCrossentropy`` -> ``sparse_categorical_crossentropy`` (Keras' rule)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Registry:
    """Resolves an instance (returned as is), a name (aliases are case-insensitive, class names
    exact), or a ``{"class_name", "config"}`` dict, to an instance of ``base``."""

    def __init__(
        self,
        kind: str,
        base: type,
        classes: Iterable[type],
        aliases: dict[str, Callable[[], Any]] | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self.classes = {cls.__name__: cls for cls in classes}
        self.aliases = {k.lower(): v for k, v in (aliases or {}).items()}

    def get(self, identifier: Any) -> Any:
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            make = self.aliases.get(identifier.lower()) or self.classes.get(identifier)
            if make is not None:
                return make()
        if isinstance(identifier, dict) and set(identifier) == {"class_name", "config"}:
            cls = self.classes.get(identifier["class_name"])
            if cls is not None and isinstance(identifier["config"], dict):
                return cls.from_config(identifier["config"])
        raise ValueError(
            f"Could not interpret {self.kind} identifier: {identifier!r}. "
            f"Known names: {sorted(self.aliases)}"
        )

    def serialize(self, obj: Any) -> dict[str, Any]:
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
