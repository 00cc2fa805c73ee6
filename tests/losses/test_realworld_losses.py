"""VGG features, PerceptualLoss, GANLoss and L1Loss against BasicSR's fixtures; VGG weight lookup and errors."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from realworld_fixtures import COVERED, INDEX, assert_matches, entries, load
from torch_threads import one_thread_fixture

from restore.archs import UNetDiscriminatorSN, VGGFeatureExtractor, build_network
from restore.losses import LOSS_REGISTRY, GANLoss, L1Loss, PerceptualLoss, build_loss

COMPONENTS = COVERED["tests/losses/test_realworld_losses.py"]
VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
one_thread = one_thread_fixture()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory, fixtures: Path) -> Path:
    """The fixtures' random VGG19 weights, regenerated from their recipe (torchvision keys, ``features.*`` only)
    and checked against the recorded SHA-256 of every tensor."""
    checksums = torch.load(fixtures / "realworld" / "vgg19_feats_00_b2_32x32.pt", weights_only=True)["vgg_checksums"]
    rs = np.random.RandomState(INDEX["vgg_seed"])
    state, in_c = {}, 3
    for index, out_c in zip(VGG19_CONVS, VGG19_WIDTHS):
        bound = math.sqrt(6.0 / (in_c * 9))
        state[f"features.{index}.weight"] = rs.uniform(-bound, bound, size=(out_c, in_c, 3, 3)).astype(np.float32)
        state[f"features.{index}.bias"] = rs.uniform(-0.1, 0.1, size=(out_c,)).astype(np.float32)
        in_c = out_c
    assert set(state) == {k for k in checksums if k.startswith("features.")}
    for key, value in state.items():
        assert list(value.shape) == checksums[key]["shape"]
        assert hashlib.sha256(value.astype("<f4").tobytes()).hexdigest() == checksums[key]["sha256_f32le"], key
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    return path


def run_fixture(entry: dict[str, Any], fx: dict[str, Any], vgg_file: Path) -> dict[str, Any]:
    component, args = entry["component"], entry["args"]
    if component == "VGGFeatureExtractor":
        assert args["vgg_seed"] == INDEX["vgg_seed"]
        vgg = VGGFeatureExtractor(
            layer_name_list=args["layer_name_list"],
            vgg_type=args["vgg_type"],
            use_input_norm=args["use_input_norm"],
            range_norm=args["range_norm"],
            vgg_weights=vgg_file,
        )
        with torch.no_grad():
            feats = vgg(fx["x"])
        return {f"feat_{k}": v for k, v in feats.items()}
    if component == "PerceptualLoss":
        opt = {k: v for k, v in args.items() if k != "vgg_seed"}
        loss = build_loss({"type": "PerceptualLoss", **opt, "vgg_weights": str(vgg_file)}, where="perceptual_opt")
        percep, style = loss(fx["x"], fx["gt"])
        assert (percep is None) == (opt["perceptual_weight"] <= 0) and (style is None) == (opt["style_weight"] <= 0)
        return {k: v for k, v in (("percep_loss", percep), ("style_loss", style)) if v is not None}
    if component == "GANLoss":
        loss = build_loss({"type": "GANLoss", **args}, where="gan_opt")
        return {
            f"loss_{target}_{role}": loss(fx["pred"], target_is_real=target == "real", is_disc=role == "disc")
            for target in ("real", "fake")
            for role in ("disc", "gen")
        }
    if component == "L1Loss":
        loss = build_loss({"type": "L1Loss", **args}, where="pixel_opt")
        return {"loss": loss(fx["pred"], fx["target"], weight=fx.get("weight"))}
    raise AssertionError(f"unhandled component {component}")


@pytest.mark.parametrize("entry", entries(COMPONENTS))
def test_matches_basicsr_fixture(entry: dict[str, Any], fixtures: Path, vgg_file: Path) -> None:
    fx = load(fixtures, entry)
    assert_matches(run_fixture(entry, fx, vgg_file), fx, entry)


def test_fixture_count() -> None:
    assert len(entries(COMPONENTS)) == 9  # 1 VGG, 2 perceptual, 5 GAN, 1 L1


def test_registered_under_basicsr_names() -> None:
    assert LOSS_REGISTRY.get("PerceptualLoss") is PerceptualLoss and LOSS_REGISTRY.get("GANLoss") is GANLoss
    assert LOSS_REGISTRY.get("L1Loss") is L1Loss


# ------------------------------------------------------------------------------------------------ VGG weights


def _chdir_default_location(tmp_path: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "experiments" / "pretrained_models" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    os.symlink(vgg_file, target)
    monkeypatch.chdir(tmp_path)


def test_weight_lookup_order(tmp_path: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTORE_VGG_WEIGHTS", raising=False)
    x = torch.rand(1, 3, 16, 16)
    reference = VGGFeatureExtractor(["conv2_1"], vgg_weights=vgg_file)(x)["conv2_1"]
    # default location, relative to the current directory
    _chdir_default_location(tmp_path, vgg_file, monkeypatch)
    torch.testing.assert_close(VGGFeatureExtractor(["conv2_1"])(x)["conv2_1"], reference, rtol=0, atol=0)
    # the environment variable wins over the default location
    monkeypatch.setenv("RESTORE_VGG_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth \(\$RESTORE_VGG_WEIGHTS"):
        VGGFeatureExtractor(["conv2_1"])
    monkeypatch.setenv("RESTORE_VGG_WEIGHTS", str(vgg_file))
    torch.testing.assert_close(VGGFeatureExtractor(["conv2_1"])(x)["conv2_1"], reference, rtol=0, atol=0)
    # an explicit path wins over both
    with pytest.raises(FileNotFoundError, match=r"missing\.pth \(perceptual_opt\.vgg_weights"):
        PerceptualLoss({"conv2_1": 1.0}, vgg_weights=tmp_path / "missing.pth")


def test_missing_weights_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTORE_VGG_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        build_loss({"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1.0}}, where="perceptual_opt")
    message = str(err.value)
    assert "\n" not in message
    assert "experiments/pretrained_models/vgg19-dcbb9e9d.pth" in message and "dcbb9e9d" in message
    assert "RESTORE_VGG_WEIGHTS" in message and "vgg_weights" in message


def test_bad_weights_and_arguments(tmp_path: Path, vgg_file: Path) -> None:
    state = torch.load(vgg_file, weights_only=True)
    del state["features.34.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth: missing features\.34\.weight"):
        VGGFeatureExtractor(["conv5_4"], vgg_weights=tmp_path / "partial.pth")
    VGGFeatureExtractor(["conv5_3"], vgg_weights=tmp_path / "partial.pth")  # only the layers used are read
    with pytest.raises(ValueError, match=r"features\.0\.weight has shape .*expected"):
        VGGFeatureExtractor(
            ["conv1_1"], vgg_type="vgg19", vgg_weights=_save(tmp_path, {"features.0.weight": torch.ones(8, 3, 3, 3)})
        )
    with pytest.raises(ValueError, match="unknown layer 'conv6_1'"):
        VGGFeatureExtractor(["conv6_1"], vgg_weights=vgg_file)
    with pytest.raises(ValueError, match="vgg_type must be one of"):
        VGGFeatureExtractor(["conv1_1"], vgg_type="vgg20", vgg_weights=vgg_file)
    with pytest.raises(ValueError, match="criterion must be one of"):
        PerceptualLoss({"conv1_1": 1.0}, criterion="l3", vgg_weights=vgg_file)
    with pytest.raises(ValueError, match="gan_type must be one of"):
        GANLoss("relativistic")


def _save(tmp_path: Path, state: dict[str, torch.Tensor], legacy: bool = False) -> Path:
    path = tmp_path / "wrong.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)  # torchvision's VGG files are legacy
    return path


def test_vgg_frozen_and_gradients_reach_the_input(vgg_file: Path) -> None:
    loss = PerceptualLoss({"conv1_2": 0.5, "relu2_2": 1.0}, style_weight=1.0, vgg_weights=vgg_file)
    loss.train()
    assert not loss.vgg.vgg_net.training
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    gt = torch.rand(2, 3, 16, 16, requires_grad=True)
    percep, style = loss(x, gt)
    (percep + style).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and gt.grad is None
    assert PerceptualLoss({"conv1_1": 1.0}, perceptual_weight=0, vgg_weights=vgg_file)(x, gt) == (None, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(x, gt)
    assert all(part.dtype == torch.float32 for part in low)
    torch.testing.assert_close(low[0], percep, rtol=0.05, atol=0)
    # l2 criterion is the mean squared feature error
    l2 = PerceptualLoss({"conv1_1": 1.0}, criterion="l2", vgg_weights=vgg_file)
    feats = l2.vgg(x), l2.vgg(gt)
    torch.testing.assert_close(l2(x, gt)[0], (feats[0]["conv1_1"] - feats[1]["conv1_1"]).square().mean())


def test_vgg_variants_follow_torchvision_numbering(tmp_path: Path) -> None:
    # vgg11_bn: conv1_1 = features.0, bn1_1 = features.1, relu1_1 = features.2, pool1 = features.3, conv2_1 = .4
    torch.manual_seed(0)
    state = {
        "features.0.weight": torch.randn(64, 3, 3, 3),
        "features.0.bias": torch.zeros(64),
        "features.1.weight": torch.full((64,), 2.0),
        "features.1.bias": torch.zeros(64),
        "features.1.running_mean": torch.zeros(64),
        "features.1.running_var": torch.ones(64),
        "features.4.weight": torch.randn(128, 64, 3, 3),
        "features.4.bias": torch.zeros(128),
    }
    path = _save(tmp_path, state, legacy=True)
    vgg = VGGFeatureExtractor(
        ["conv1_1", "bn1_1", "conv2_1"], vgg_type="vgg11_bn", use_input_norm=False, vgg_weights=path
    )
    x = torch.rand(1, 3, 8, 8)
    out = vgg(x)
    conv = torch.nn.functional.conv2d(x, state["features.0.weight"], padding=1)
    torch.testing.assert_close(out["conv1_1"], conv)
    torch.testing.assert_close(out["bn1_1"], 2 * conv / math.sqrt(1 + 1e-5))
    assert out["conv2_1"].shape == (1, 128, 4, 4)


@pytest.mark.parametrize(
    "name", ["train_Real_HAT_GAN_SRx4_finetune_from_mse_model", "train_Real_DRCT_SRx4_finetune_from_mse_model"]
)
def test_official_gan_option_blocks_build(name: str, vgg_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opt = yaml.safe_load((Path(__file__).resolve().parents[2] / "options" / "train" / f"{name}.yml").read_text())
    monkeypatch.setenv("RESTORE_VGG_WEIGHTS", str(vgg_file))
    net_d = build_network(opt["network_d"])
    assert isinstance(net_d, UNetDiscriminatorSN) and net_d.skip_connection
    train = opt["train"]
    pixel = build_loss(train["pixel_opt"], where="train.pixel_opt")
    percep = build_loss(train["perceptual_opt"], where="train.perceptual_opt")
    gan = build_loss(train["gan_opt"], where="train.gan_opt")
    x, gt = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    values = pixel(x, gt), *percep(x, gt)
    assert values[2] is None and all(torch.isfinite(v) for v in values[:2])
    assert gan.gan_type == "vanilla" and torch.isfinite(gan(net_d(x), True, is_disc=False))


def test_range_norm_maps_minus_one_one_to_zero_one(vgg_file: Path) -> None:
    """``range_norm=True`` on ``2x - 1`` sees the same image as ``range_norm=False`` on ``x``."""
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    layers = ["conv1_2", "conv2_2"]
    plain = VGGFeatureExtractor(layers, vgg_weights=vgg_file)(x)
    ranged = VGGFeatureExtractor(layers, range_norm=True, vgg_weights=vgg_file)(2 * x - 1)
    for name in layers:
        torch.testing.assert_close(ranged[name], plain[name], rtol=1e-5, atol=1e-5)
