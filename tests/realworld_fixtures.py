"""Shared loading and comparison for the golden fixtures in ``tests/fixtures/realworld`` (see its README.md).

Each test module parametrises over the index entries of the components it covers; ``test_realworld_coverage``
checks that together they cover every entry of ``index.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

INDEX_PATH = Path(__file__).resolve().parent / "fixtures" / "realworld" / "index.json"
INDEX: dict[str, Any] = json.loads(INDEX_PATH.read_text())
EXPECTED_FIXTURES = 40

#: Which test module covers which ``component`` values.
COVERED = {
    "tests/data/test_degradations.py": {
        "kernel.bivariate_Gaussian",
        "kernel.bivariate_generalized_Gaussian",
        "kernel.bivariate_plateau",
        "kernel.circular_lowpass_kernel",
        "filter2D",
        "USMSharp",
        "usm_sharp",
        "DiffJPEG",
    },
    "tests/archs/test_unet_discriminator.py": {"UNetDiscriminatorSN"},
    "tests/losses/test_realworld_losses.py": {"VGGFeatureExtractor", "PerceptualLoss", "GANLoss", "L1Loss"},
}


def entries(components: Iterable[str]) -> list[Any]:
    """``pytest.param(entry, id=file)`` for every index entry whose component is in ``components``."""
    wanted = set(components)
    return [pytest.param(e, id=e["file"]) for e in INDEX["fixtures"] if e["component"] in wanted]


def load(fixtures: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    return torch.load(fixtures / "realworld" / entry["file"], weights_only=True)


def _tolerance(entry: Mapping[str, Any], key: str) -> tuple[float, float]:
    override = (entry.get("tol_overrides") or {}).get(key)
    if override is None:
        return float(entry["atol"]), float(entry["rtol"])
    if isinstance(override, Mapping):
        return float(override["atol"]), float(override["rtol"])
    return float(override[0]), float(override[1])


def _close(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> None:
    assert isinstance(actual, torch.Tensor), f"{name}: expected a tensor, got {type(actual).__name__}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    act, exp = actual.detach().double().cpu(), expected.double()
    excess = (act - exp).abs() - (atol + rtol * exp.abs())
    worst = float(excess.max()) if excess.numel() else -1.0
    assert not torch.isnan(excess).any() and worst <= 0, (
        f"{name}: max |diff| {float((act - exp).abs().max()):.3g} exceeds atol {atol} + rtol {rtol} * |expected|"
    )


def assert_matches(actual: Mapping[str, Any], fx: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
    """Apply the README's pass rule to every output listed for ``entry`` (nested dicts entry by entry)."""
    assert set(entry["outputs"]) == set(fx["output_keys"]), f"{entry['file']}: index and file disagree on outputs"
    for key in entry["outputs"]:
        assert key in actual, f"{entry['file']}: no result for output {key!r}"
        atol, rtol = _tolerance(entry, key)
        expected = fx[key]
        if isinstance(expected, Mapping):
            assert set(actual[key]) == set(expected), f"{entry['file']}: {key} keys differ"
            for sub, value in expected.items():
                _close(f"{entry['file']}:{key}.{sub}", actual[key][sub], value, atol, rtol)
        else:
            _close(f"{entry['file']}:{key}", actual[key], expected, atol, rtol)
