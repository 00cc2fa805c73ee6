"""DRSformer against the official parity fixtures and manifests, plus training-side behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from parity_helpers import PARITY_DIR, bf16_forward, check_manifest_meta_load, load_fixture_network
from torch_threads import one_thread_fixture

from restore.archs.drsformer import PRESETS, DRSformer

FIXTURES = sorted(PARITY_DIR.glob("drsformer_*.pt"))
MANIFESTS = sorted(PARITY_DIR.glob("manifests/DRSformer*.json"))


_one_thread = one_thread_fixture()


def _official_pipeline(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """test.py: reflect-pad bottom/right to a multiple of 8 (only dimensions that need it), forward, clamp, crop."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, (-w) % 8, 0, (-h) % 8), "reflect")
    return net(padded).clamp(0, 1)[..., :h, :w]


def _tiny(**overrides: object) -> DRSformer:
    cfg = {"dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 2, 2, 4], "ffn_expansion_factor": 2.0, **overrides}
    return DRSformer(**cfg)


def test_fixtures_are_present(fixtures: Path) -> None:
    assert fixtures / "parity" == PARITY_DIR
    assert len(FIXTURES) == 4 and len(MANIFESTS) == 2


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_parity_fixture(path: Path, backend: str, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_OPS", backend)
    fixture = torch.load(path, weights_only=True)
    assert fixture["arch"] == "DRSformer"
    net = load_fixture_network(
        fixture, {"type": "DRSformer", **fixture["kwargs"], "mefc": fixture["variant"] == "mefc"}
    )
    if layout == "channels_last":  # the layout the engine runs DRSformer in on the CPU
        net = net.to(memory_format=torch.channels_last)
        fixture["input"] = fixture["input"].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        if fixture["mode"] == "arch":
            out = net(fixture["input"])
        else:
            out = _official_pipeline(net, fixture["input"])
    torch.testing.assert_close(out, fixture["output"], atol=fixture["atol"], rtol=fixture["rtol"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_keys_order_shapes(path: Path) -> None:
    manifest = json.loads(path.read_text())
    check_manifest_meta_load(
        manifest, {"type": "DRSformer", **manifest["kwargs"], "mefc": manifest["variant"] == "mefc"}
    )


def test_presets_pick_the_variant_per_dataset() -> None:
    assert {name: cfg["mefc"] for name, cfg in PRESETS.items()} == {
        "Rain200H": True, "Rain200L": False, "DID": True, "DDN": True, "SPA": False,
    }  # fmt: skip
    manifests = {json.loads(p.read_text())["variant"]: json.loads(p.read_text())["kwargs"] for p in MANIFESTS}
    for cfg in PRESETS.values():
        assert {k: v for k, v in cfg.items() if k != "mefc"} == manifests["mefc" if cfg["mefc"] else "no_mefc"]


def test_engine_attributes() -> None:
    net = _tiny()
    assert (net.scale, net.pad_multiple, net.clamp_output) == (1, 8, True)
    assert net.cpu_memory_format == "channels_last"
    assert net.supports_fp16 is False  # the official code has no fp16 path; bf16 is the low-precision mode


def test_fp16_inference_is_refused() -> None:
    from restore.engine import infer

    with pytest.raises(ValueError, match=r"fp16.*refused for DRSformer"):
        infer(_tiny().eval(), torch.rand(1, 3, 16, 16), precision="fp16")


def test_no_mefc_variant_has_no_compensators() -> None:
    keys = set(_tiny(mefc=False).state_dict())
    assert not any(k.startswith(("encoder_level0.", "refinement.")) for k in keys)
    assert any(k.startswith(("encoder_level0.", "refinement.")) for k in _tiny().state_dict())


@pytest.mark.parametrize("mefc", [True, False])
def test_every_parameter_gets_a_gradient(mefc: bool) -> None:
    torch.manual_seed(0)
    net = _tiny(mefc=mefc, bias=True).train()
    net(torch.rand(2, 3, 8, 16)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(float(net.encoder_level1[0].attn.get_parameter(f"attn{i}").grad.abs()) > 0 for i in range(1, 5))


def test_batch_equals_per_sample() -> None:
    torch.manual_seed(1)
    net = _tiny().eval()
    x = torch.rand(2, 3, 16, 8)
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_bfloat16_forward_is_finite_and_close() -> None:
    torch.manual_seed(2)
    ref, low = bf16_forward(_tiny(), torch.rand(1, 3, 16, 16))
    assert (low.float() - ref).abs().mean() < 5e-2 * ref.abs().mean()


def test_rejects_sizes_that_are_not_multiples_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        _tiny()(torch.rand(1, 3, 16, 12))


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="4 entries"):
        DRSformer(num_blocks=[1, 1, 1])
    with pytest.raises(ValueError, match="out_channels"):
        DRSformer(out_channels=1)
