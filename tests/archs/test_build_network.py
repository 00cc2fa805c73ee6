"""``build_network``: kwargs checks and the kwargs that a checkpoint decides (DRSformer's MEFC variant)."""

import pytest
import torch

from restore.archs import build_network, check_network_kwargs
from restore.checkpoint import load_network


def test_misspelt_kwarg_is_rejected():
    with pytest.raises(TypeError, match=r"network_g\.window_sizee: HAT takes no argument 'window_sizee'"):
        build_network({"type": "HAT", "window_sizee": 8})


def test_unknown_type_lists_registered():
    with pytest.raises(KeyError, match="Registered: DLGSANet, DRCT, DRSformer, HAT"):
        check_network_kwargs({"type": "Swin"})


@pytest.mark.parametrize("fixture", ["drsformer_tiny_nomefc_arch.pt", "drsformer_tiny_arch.pt"])
def test_drsformer_variant_follows_the_checkpoint(fixtures, fixture):
    """The official YAML is the same for both variants; the weights decide whether MEFC modules exist."""
    fx = torch.load(fixtures / "parity" / fixture, weights_only=True)
    kwargs = {k: v for k, v in fx["kwargs"].items() if k != "mefc"}
    for yaml_flag in (True, False):
        net = build_network({"type": "DRSformer", **kwargs, "mefc": yaml_flag}, state_dict=fx["state_dict"])
        load_network(net, fx["state_dict"], strict=True, param_key=None)
        assert net.mefc == (fx["variant"] == "mefc")
    with torch.no_grad():
        out = net.eval()(fx["input"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])
