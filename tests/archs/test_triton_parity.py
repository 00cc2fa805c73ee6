"""Whole networks on the Triton backend (CPU interpreter) reproduce the official outputs of every arch fixture."""

from pathlib import Path

import pytest
import torch

from restore.archs import build_network
from restore.checkpoint import load_network

PARITY = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
ARCH_FIXTURES = sorted(p.name for p in PARITY.glob("*_arch.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCH_FIXTURES)
def test_arch_fixture_on_triton_backend(fixtures, name, monkeypatch):
    fx = torch.load(fixtures / "parity" / name, weights_only=True)
    monkeypatch.setenv("RESTORE_OPS", "triton")
    net = build_network({"type": fx["arch"], **fx["kwargs"]}, state_dict=fx["state_dict"])
    load_network(net, fx["state_dict"], strict=True, param_key=None)
    with torch.no_grad():
        out = net.eval()(fx["input"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


def test_every_arch_fixture_is_covered():
    assert len(ARCH_FIXTURES) == 9  # hat x2/x4, drct x2/x4, drsformer x2, dlgsanet x3
