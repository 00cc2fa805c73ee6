"""Every key of every shipped option file is checked: a one-character typo in any of them is an error naming it.

For each file under ``options/`` and each key in it (at any depth, ``network_g`` kwargs, metric, loss, optimizer
and scheduler blocks included) the key is misspelt by one character and the options are validated in-process;
the error must name the misspelt key path and suggest the original key. Names chosen by the user (the dataset
keys under ``datasets``, the metric names under ``val.metrics``) are not option keys and are only descended into.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restore.utils.options import ACCEPTED_UNUSED, OptionsError, validate_options

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(str(p.relative_to(REPO)) for p in (REPO / "options").rglob("*.yml"))
#: Mappings whose keys are names the user picks, not option keys.
NAMED = {("datasets",), ("val", "metrics")}


def key_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every option key path in ``node`` (depth first), leaving out user-chosen names."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        path = (*prefix, str(key))
        if prefix not in NAMED:
            yield path
        yield from key_paths(value, path)


def typo(key: str, siblings: set[str]) -> str:
    """``key`` with one character dropped (or two swapped), never another valid key."""
    candidates = [key[:i] + key[i + 1 :] for i in range(len(key) // 2, len(key))]
    candidates += [key[:i] + key[i + 1] + key[i] + key[i + 2 :] for i in range(len(key) - 1)]
    for candidate in candidates:
        if candidate and candidate != key and candidate not in siblings:
            return candidate
    raise AssertionError(f"no typo for {key!r}")


def misspelt(raw: dict, path: tuple[str, ...]) -> tuple[dict, tuple[str, ...]]:
    """A copy of ``raw`` with the last key of ``path`` misspelt (order kept), and the misspelt path."""
    out = copy.deepcopy(raw)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    wrong = typo(path[-1], set(parent))
    items = [(wrong if k == path[-1] else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)
    return out, (*path[:-1], wrong)


@pytest.mark.parametrize("name", FILES)
def test_a_typo_in_any_key_is_an_error_naming_it(name: str) -> None:
    raw = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    validate_options(raw, name)  # the file as shipped is valid
    paths = list(key_paths(raw))
    assert len(paths) > 10
    for path in paths:
        bad, wrong = misspelt(raw, path)
        with pytest.raises(OptionsError) as caught:
            validate_options(bad, name)
        problems = caught.value.problems
        dotted = ".".join(wrong)
        assert len(problems) == 1, (dotted, problems)
        assert problems[0].startswith(f"{name}: {dotted}: "), (dotted, problems)
        assert f"did you mean {path[-1]!r}?" in problems[0], (dotted, problems)


def test_typos_in_several_keys_are_all_reported() -> None:
    name = "options/test/HAT_SRx4.yml"
    raw = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    raw["val"]["metrics"]["psnr"]["crop_bordr"] = raw["val"]["metrics"]["psnr"].pop("crop_border")
    raw["val"]["metrics"]["ssim"]["test_y_chanel"] = raw["val"]["metrics"]["ssim"].pop("test_y_channel")
    raw["scael"] = raw.pop("scale")
    raw["network_g"]["embed_dm"] = raw["network_g"].pop("embed_dim")
    raw["network_g"]["window_sze"] = raw["network_g"].pop("window_size")
    raw["network_g"]["depths"] = "6, 6"  # a wrong type beside the typos
    with pytest.raises(OptionsError) as caught:
        validate_options(raw, name)
    assert sorted(p.split(": ")[1] for p in caught.value.problems) == [
        "network_g.depths", "network_g.embed_dm", "network_g.window_sze", "scael", "val.metrics.psnr.crop_bordr",
        "val.metrics.ssim.test_y_chanel",
    ]  # fmt: skip
    assert str(caught.value).count("\n") == 5


def test_accepted_unused_keys_are_schema_keys_and_documented() -> None:
    """Each key of the accepted-but-unused list is one the schema accepts, and the README lists it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for dotted in ACCEPTED_UNUSED:
        raw: dict = {}
        node = raw
        parts = dotted.replace("*", "test_1").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = None
        validate_options(raw, "<accepted>", check_network=False)
        assert f"`{dotted}`" in readme, dotted
