"""Name -> object registries: the single place where ``type`` strings from option files are resolved.

Names are exact (no lower-casing, no ``_suffix`` fallbacks), so a typo in an option file is an error that
lists the closest registered names instead of silently picking something else.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
    """A mapping from names to classes or functions, filled by the ``register`` decorator.

    Example:
        >>> @ARCH_REGISTRY.register()
        ... class MyNet(nn.Module): ...
        >>> ARCH_REGISTRY.get("MyNet")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._objects: dict[str, Any] = {}

    def register(self, obj: T | None = None, *, name: str | None = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as ``@reg.register()``."""

        def add(item: T) -> T:
            key = name or item.__name__  # type: ignore[attr-defined]
            if key in self._objects and self._objects[key] is not item:
                raise KeyError(f"{self.kind} registry: name {key!r} is already registered")
            self._objects[key] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; unknown names raise ``KeyError`` listing the known ones."""
        try:
            return self._objects[name]
        except KeyError:
            raise KeyError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._objects, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return f"unknown {self.kind} type {name!r}.{hint} Registered: {', '.join(sorted(self._objects))}"

    def keys(self) -> list[str]:
        return sorted(self._objects)

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.keys()})"


ARCH_REGISTRY = Registry("arch")
MODEL_REGISTRY = Registry("model")
DATASET_REGISTRY = Registry("dataset")
LOSS_REGISTRY = Registry("loss")
METRIC_REGISTRY = Registry("metric")

__all__ = ["ARCH_REGISTRY", "DATASET_REGISTRY", "LOSS_REGISTRY", "METRIC_REGISTRY", "MODEL_REGISTRY", "Registry"]

