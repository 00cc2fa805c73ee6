"""UNetDiscriminatorSN against BasicSR's fixtures, and its spectral norm against torch's implementation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from realworld_fixtures import COVERED, assert_matches, entries, load
from torch import nn
from torch_threads import one_thread_fixture

from restore.archs import ARCH_REGISTRY, UNetDiscriminatorSN, build_network, check_network_kwargs
from restore.archs.layers.spectral_norm import SpectralNormConv2d

COMPONENTS = COVERED["tests/archs/test_unet_discriminator.py"]
one_thread = one_thread_fixture()


@pytest.mark.parametrize("entry", entries(COMPONENTS))
def test_matches_basicsr_fixture(entry: dict[str, Any], fixtures: Path) -> None:
    fx = load(fixtures, entry)
    net = build_network({"type": "UNetDiscriminatorSN", **entry["args"]})
    assert list(net.state_dict()) == fx["state_dict_keys"]
    net.load_state_dict(fx["state_dict"], strict=True)
    net.eval()
    with torch.no_grad():
        out = net(fx["x"])
    # training mode: one power iteration from the recorded initial u, v
    net.load_state_dict({**fx["state_dict"], **fx["sn_uv_init"]}, strict=True)
    net.train()
    with torch.no_grad():
        out_train = net(fx["x_train"])
    state = net.state_dict()
    uv_after = {k: state[k] for k in fx["sn_uv_after_train"]}
    assert_matches({"out": out, "out_train": out_train, "sn_uv_after_train": uv_after}, fx, entry)


def test_fixture_count() -> None:
    assert len(entries(COMPONENTS)) == 2


def test_spectral_norm_matches_torch_reference() -> None:
    torch.manual_seed(0)
    ours = SpectralNormConv2d(6, 10, 3, 2, 1, bias=True)
    ref = nn.utils.spectral_norm(nn.Conv2d(6, 10, 3, 2, 1))
    ref.load_state_dict(ours.state_dict(), strict=True)
    assert set(ours.state_dict()) == {"weight_orig", "weight_u", "weight_v", "bias"}
    x = torch.randn(2, 6, 12, 12)
    for step in range(3):  # training mode: u, v evolve identically; gradients agree
        for m in (ours, ref):
            m.zero_grad()
        out, out_ref = ours(x), ref(x)
        torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
        (out.square().sum() + step).backward()
        out_ref.square().sum().backward()
        torch.testing.assert_close(ours.weight_orig.grad, ref.weight_orig.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ours.weight_u, ref.weight_u, rtol=1e-5, atol=1e-7)
    ours.eval()
    ref.eval()
    u = ours.weight_u.clone()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    assert torch.equal(ours.weight_u, u)  # eval mode never updates u, v


def test_sigma_estimate_converges_to_largest_singular_value() -> None:
    torch.manual_seed(1)
    conv = SpectralNormConv2d(4, 8, 3, n_power_iterations=30)
    weight = conv.normalized_weight()
    assert abs(float(torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2)) - 1) < 1e-4


def test_registry_copy_autocast_and_errors() -> None:
    assert ARCH_REGISTRY.get("UNetDiscriminatorSN") is UNetDiscriminatorSN
    with pytest.raises(KeyError, match="UNetDiscriminatorSN"):
        build_network({"type": "UNetDiscriminatorSn", "num_in_ch": 3})
    with pytest.raises(TypeError, match=r"network_d\.num_feats.*did you mean 'num_feat'"):
        check_network_kwargs({"type": "UNetDiscriminatorSN", "num_feats": 8}, where="network_d")
    torch.manual_seed(0)
    net = UNetDiscriminatorSN(3, num_feat=8)
    twin = copy.deepcopy(net)
    x = torch.rand(2, 3, 16, 24, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 1, 16, 24)
    out.mean().backward()
    assert net.conv1.weight_orig.grad is not None and x.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = twin(x)
    assert low.dtype == torch.bfloat16 and twin.conv1.weight_u.dtype == torch.float32
    torch.testing.assert_close(low.float(), out, atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 3, 20, 16))
    assert UNetDiscriminatorSN(3, 8, skip_connection=False)(torch.rand(1, 3, 20, 16)).shape[1] == 1
