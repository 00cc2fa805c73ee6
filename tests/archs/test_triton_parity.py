"""Whole networks on the Triton backend (CPU interpreter) reproduce the official outputs of every arch fixture.

The interpreter is slow, so the default run takes the smallest fixture of each family (:data:`DEFAULT_RUN`) and the
others are marked ``slow`` (CI runs them; ``-m "not slow"`` skips them for a quick local check). The ops
themselves are covered by the op-level interpreter tests in ``tests/ops`` in every run.
"""

from pathlib import Path

import pytest
import torch

from restore.archs import build_network
from restore.checkpoint import load_network

PARITY = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
ARCH_FIXTURES = sorted(p.name for p in PARITY.glob("*_arch.pt"))
#: One fixture per family (the cheapest under the interpreter) runs by default.
DEFAULT_RUN = {
    "hat": "hat_tiny_x4_arch.pt",
    "drct": "drct_tiny_x4_arch.pt",
    "drsformer": "drsformer_tiny_nomefc_arch.pt",
    "dlgsanet": "dlgsanet_tiny_x4_arch.pt",
}


def _cases() -> list:
    default = set(DEFAULT_RUN.values())
    return [pytest.param(name, marks=() if name in default else pytest.mark.slow, id=name) for name in ARCH_FIXTURES]


@pytest.mark.parametrize("name", _cases())
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
    assert set(DEFAULT_RUN.values()) <= set(ARCH_FIXTURES)
    assert {name.split("_")[0] for name in ARCH_FIXTURES} == set(DEFAULT_RUN)
