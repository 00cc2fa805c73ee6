"""The restoration model: official model_type aliases, unsupported modes, one training step under each switch."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_HAT

from restore.checkpoint import load_state_dict
from restore.models import OFFICIAL_MODEL_TYPES, RestorationModel, build_model
from restore.models.batch_augment import MixUp, ProgressivePatches
from restore.utils.registry import MODEL_REGISTRY

CPU = torch.device("cpu")


def _opt(**train: object) -> dict:
    base = {
        "total_iter": 10,
        "ema_decay": 0.9,
        "optim_g": {"type": "Adam", "lr": 1e-3},
        "scheduler": {"type": "MultiStepLR", "milestones": [5], "gamma": 0.5},
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
    }
    base.update(train)
    return {"model_type": "SRModel", "scale": 2, "network_g": dict(TINY_HAT), "path": {}, "train": base}


def _batch(size: int = 2, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"lq": torch.rand(size, 3, 8, 8, generator=gen), "gt": torch.rand(size, 3, 16, 16, generator=gen)}


@pytest.mark.parametrize("model_type", [*OFFICIAL_MODEL_TYPES, "RestorationModel"])
def test_official_model_types_build_the_one_model(model_type: str) -> None:
    model = build_model(dict(_opt(), model_type=model_type), CPU)
    assert isinstance(model, RestorationModel)


@pytest.mark.parametrize("model_type", ["SRGANModel", "ESRGANModel"])
def test_other_gan_model_types_point_to_the_supported_one(model_type: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"model_type {model_type}: not implemented; .*RealESRGANModel"):
        build_model(dict(_opt(), model_type=model_type), CPU)


def test_real_esrgan_model_types_and_generator_only_refusals() -> None:
    from restore.models import RealESRGANModel, RealESRNetModel

    model = build_model(dict(_opt(), model_type="RealHATMSEModel", high_order_degradation=False), CPU)
    assert isinstance(model, RealESRNetModel) and model.feed is None  # paired path
    model = build_model(dict(_opt(), model_type="RealDRCTMSEModel"), CPU)
    assert model.feed is not None and model.feed.pool.size == 180
    with pytest.raises(NotImplementedError, match="network_d: model_type SRModel trains the generator alone"):
        build_model(dict(_opt(), network_d={"type": "UNetDiscriminatorSN"}), CPU)
    with pytest.raises(KeyError, match="network_d: missing; model_type RealHATGANModel"):
        build_model(dict(_opt(), model_type="RealHATGANModel"), CPU)
    assert RealESRGANModel.trains_discriminator
    with pytest.raises(KeyError, match="unknown model type 'SRModle'"):
        build_model(dict(_opt(), model_type="SRModle"), CPU)
    assert "HATModel" in MODEL_REGISTRY


def test_step_updates_weights_ema_and_reports_losses() -> None:
    opt = _opt(fft_opt={"type": "FFTLoss", "loss_weight": 0.1}, use_grad_clip=True, grad_clip_norm=0.5)
    model = build_model(opt, CPU)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    ema_before = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    model.lr.apply(1)
    logs = model.train_step([_batch()], 1)
    assert set(logs) == {"l_pix", "l_fft", "l_total"}
    assert logs["l_total"] == pytest.approx(logs["l_pix"] + logs["l_fft"], rel=1e-6)
    after = model.net_g.state_dict()
    name = "conv_first.weight"
    assert not torch.equal(after[name], before[name])
    torch.testing.assert_close(model.net_g_ema.state_dict()[name], 0.9 * ema_before[name] + 0.1 * after[name])


def test_grad_clip_bounds_the_gradient_norm() -> None:
    model = build_model(_opt(use_grad_clip=True, grad_clip_norm=0.01, optim_g={"type": "SGD", "lr": 1.0}), CPU)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.lr.apply(1)
    model.train_step([_batch()], 1)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.net_g.parameters(), before)])
    assert step.norm().item() == pytest.approx(0.01, rel=1e-3)  # SGD, lr 1: the step is the clipped gradient


def test_non_finite_input_aborts_naming_iteration_and_files() -> None:
    model = build_model(_opt(), CPU)
    batch = _batch()
    batch["lq"][0, 0, 0, 0] = float("nan")
    batch["lq_path"] = ["a.png", "b.png"]
    with pytest.raises(FloatingPointError, match=r"non-finite loss at iteration 7 \(l_pix=nan\).*a\.png"):
        model.train_step([batch], 7)


def test_bf16_autocast_and_channels_last() -> None:
    model = build_model(_opt(amp="bf16", channels_last=True), CPU)
    seen = []
    model.net_g.conv_first.register_forward_hook(lambda m, i, o: seen.append((i[0].is_contiguous(), o.dtype)))
    logs = model.train_step([_batch()], 1)
    assert seen == [(False, torch.bfloat16)]  # channels_last input, convolution computed in bf16
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters()) and logs["l_pix"] > 0


@pytest.mark.filterwarnings("ignore::UserWarning")  # dynamo notes about graph breaks in the attention ops
def test_compiled_network_saves_plain_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_fn = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module: compile_fn(module, backend="eager"))
    model = build_model(_opt(compile=True), CPU)
    assert model.forward_net is not model.net_g
    model.train_step([_batch()], 1)
    path = model.save_network(tmp_path / "net.pth")
    saved = torch.load(path, weights_only=True)
    assert set(saved["params"]) == set(model.net_g.state_dict()) and not any("_orig_mod" in k for k in saved["params"])
    assert torch.equal(load_state_dict(path, "params")["conv_first.weight"], model.net_g.conv_first.weight)


def test_state_round_trip_restores_optimizer() -> None:
    model = build_model(_opt(), CPU)
    model.train_step([_batch()], 1)
    other = build_model(_opt(), CPU)
    other.load_state_dict(model.state_dict())
    exp_avg = [s["exp_avg"] for s in other.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(exp_avg, model.optimizer.state_dict()["state"].values()))


def test_progressive_patches_follow_the_stage_table() -> None:
    spec = {"iters": [2, 3], "mini_batch_sizes": [2, 4], "gt_sizes": [8, 16], "gt_size": 16, "batch_size_per_gpu": 4}
    prog = ProgressivePatches(spec, scale=2)
    assert [prog.stage(t) for t in (1, 2, 3, 5, 9)] == [(2, 8), (2, 8), (4, 16), (4, 16), (4, 16)]
    batch = {"lq": torch.arange(4 * 8 * 8.0).reshape(4, 1, 8, 8), "gt": torch.zeros(4, 1, 16, 16)}
    batch["gt"][:, :, ::2, ::2] = batch["lq"]  # GT pixel (2y, 2x) carries LQ pixel (y, x)
    random.seed(0)
    out = prog(batch, 1)
    assert out["lq"].shape == (2, 1, 4, 4) and out["gt"].shape == (2, 1, 8, 8)
    torch.testing.assert_close(out["gt"][:, :, ::2, ::2], out["lq"])  # crops stay aligned
    random.seed(0)
    keep = random.sample(range(4), k=2)
    top, left = int(4 * random.random()), int(4 * random.random())
    torch.testing.assert_close(out["lq"], batch["lq"][keep][..., top : top + 4, left : left + 4])
    assert prog(batch, 3)["lq"].shape == (4, 1, 8, 8)
    assert ProgressivePatches.enabled(spec) and not ProgressivePatches.enabled({"gt_size": 16})
    with pytest.raises(ValueError, match="mini_batch_sizes"):
        ProgressivePatches(dict(spec, mini_batch_sizes=[2, 8]), scale=2)


def test_mixup_formula() -> None:
    mix = MixUp(beta=1.2, use_identity=False)
    gt, lq = torch.rand(4, 3, 2, 2), torch.rand(4, 3, 2, 2)
    torch.manual_seed(5)
    lam = mix.dist.rsample((1, 1)).item()
    perm = torch.randperm(4)
    torch.manual_seed(5)
    got_gt, got_lq = mix(gt, lq)
    torch.testing.assert_close(got_gt, lam * gt + (1 - lam) * gt[perm])
    torch.testing.assert_close(got_lq, lam * lq + (1 - lam) * lq[perm])


TINY_DRSFORMER = {"type": "DRSformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 2, 2, 4],
                  "ffn_expansion_factor": 2.0, "mefc": False}  # fmt: skip


@pytest.mark.parametrize(("network_g", "setting", "expected"), [
    (TINY_DRSFORMER, None, True),  # unset: the network's CPU layout
    (TINY_DRSFORMER, False, False),
    (TINY_HAT, None, False),
    (TINY_HAT, True, True),
])  # fmt: skip
def test_memory_format_follows_the_network_on_cpu(network_g: dict, setting: bool | None, expected: bool) -> None:
    opt = _opt() if setting is None else _opt(channels_last=setting)
    opt.update(scale=1 if network_g["type"] == "DRSformer" else 2, network_g=dict(network_g))
    model = build_model(opt, CPU)
    assert model.channels_last is expected
    conv = next(m for m in model.net_g.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is expected
    gen = torch.Generator().manual_seed(0)
    size = 16 if network_g["type"] == "DRSformer" else 8
    batch = {"lq": torch.rand(2, 3, size, size, generator=gen), "gt": torch.rand(2, 3, 16, 16, generator=gen)}
    assert model.train_step([batch], 1)["l_pix"] > 0
