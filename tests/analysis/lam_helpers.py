"""Helpers of the LAM tests: the parity networks the LAM fixtures were computed on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from restore.archs import build_network

REPO_ROOT = Path(__file__).resolve().parents[2]


def parity_file(fixtures: Path, name: str) -> Path:
    """``tests/fixtures/parity/<name>``, or the same file in the ``shared/parity`` folder beside the checkout."""
    candidates = [fixtures / "parity" / name] + [root / "shared" / "parity" / name for root in REPO_ROOT.parents[:2]]
    for path in candidates:
        if path.is_file():
            return path
    pytest.fail(f"parity fixture {name} not found (looked in {', '.join(str(p.parent) for p in candidates)})")


def parity_network(fixtures: Path, name: str) -> nn.Module:
    """The network of parity fixture ``name``: built from its kwargs, loaded strictly, in eval mode."""
    fx = torch.load(parity_file(fixtures, name), weights_only=True)
    net = build_network({"type": fx["arch"], **fx["kwargs"]})
    net.load_state_dict(fx["state_dict"], strict=True)
    return net.eval()


def parity_input(fixtures: Path, name: str) -> torch.Tensor:
    """The ``(1, 3, H, W)`` input stored with parity fixture ``name``."""
    return torch.load(parity_file(fixtures, name), weights_only=True)["input"]
