"""Every name a public package exports is the documented object (a function, class or constant), never a module.

A submodule import binds the submodule as an attribute of its package; when an exported function has the same name
as its module (``restore.data.imresize``), a lazily provided function is then shadowed. These tests import the whole
library first, so every submodule has been bound, and then look each exported name up at package level.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import restore

REPO = Path(__file__).resolve().parents[1]


def _all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(restore.__path__, "restore."))


def _public_packages() -> list[str]:
    names = ["restore"] + [m.name for m in pkgutil.walk_packages(restore.__path__, "restore.") if m.ispkg]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))


@pytest.fixture(scope="module")
def whole_library() -> None:
    for name in _all_modules():
        importlib.import_module(name)


def _exports() -> list[tuple[str, str]]:
    out = []
    for package in _public_packages():
        for name in getattr(importlib.import_module(package), "__all__", []):
            out.append((package, name))
    return out


def test_the_public_packages_export_names() -> None:
    exports = _exports()
    assert {p for p, _ in exports} >= {"restore.archs", "restore.data", "restore.engine", "restore.metrics",
                                       "restore.ops", "restore.losses", "restore.models"}  # fmt: skip
    assert ("restore.data", "imresize") in exports


@pytest.mark.parametrize(("package", "name"), _exports(), ids=lambda v: v)
def test_exported_name_is_the_documented_object(whole_library: None, package: str, name: str) -> None:
    namespace: dict = {}
    exec(f"from {package} import {name} as value", namespace)  # the statement users write
    value = namespace["value"]
    assert not isinstance(value, types.ModuleType), f"`from {package} import {name}` gives the module {value.__name__}"
    assert getattr(importlib.import_module(package), name) is value
    if inspect.isfunction(value) or inspect.isclass(value):
        home = sys.modules[value.__module__]
        assert value.__module__.startswith("restore"), f"{package}.{name} is {value.__module__}.{value.__qualname__}"
        assert getattr(home, value.__name__) is value  # the object defined there, not a wrapper or a stand-in


def test_imresize_is_callable_in_a_fresh_interpreter() -> None:
    code = (
        "import numpy as np\n"
        "import restore.metrics\n"  # imports restore.data.imresize (the module) on the way
        "from restore.data import imresize\n"
        "print(imresize(np.ones((8, 8)), 0.5).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(4, 4)"
