"""The GAN-stage model on paired batches: step schedule, bf16 autocast of D, pretrained D, state round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from real_helpers import SMALL_PERCEPTUAL, TINY_D, random_vgg19_weights
from train_helpers import TINY_HAT

from restore.checkpoint import CheckpointError, save_checkpoint
from restore.models import RealESRGANModel, build_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vgg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_vgg19_weights(tmp_path_factory.mktemp("vgg") / "vgg.pth", stages=2)


def _opt(vgg: Path, **extra: object) -> dict:
    opt = {
        "model_type": "RealHATGANModel",
        "scale": 2,
        "high_order_degradation": False,
        "network_g": dict(TINY_HAT),
        "network_d": dict(TINY_D),
        "path": {},
        "train": {
            "total_iter": 10,
            "ema_decay": 0.9,
            "optim_g": {"type": "Adam", "lr": 1e-3},
            "optim_d": {"type": "Adam", "lr": 1e-3},
            "scheduler": {"type": "MultiStepLR", "milestones": [5], "gamma": 0.5},
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
            "perceptual_opt": dict(SMALL_PERCEPTUAL, vgg_weights=str(vgg)),
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1},
        },
    }
    for key, value in extra.items():
        if key in opt["train"] or key in ("net_d_iters", "net_d_init_iters", "amp"):
            opt["train"][key] = value
        else:
            opt[key] = value
    return opt


def _batch(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"lq": torch.rand(2, 3, 16, 16, generator=gen), "gt": torch.rand(2, 3, 32, 32, generator=gen)}


def _copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _changed(before: dict, net: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in net.state_dict().items() if k.endswith(("weight", "orig")))


def test_discriminator_trains_alone_until_the_generator_step_is_due(vgg: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_opt(vgg, net_d_iters=2, net_d_init_iters=0), CPU)
    assert isinstance(model, RealESRGANModel)
    g0, d0 = _copy(model.net_g), _copy(model.net_d)
    trainable: list[bool] = []  # per discriminator forward: do D's parameters take gradients while it runs?
    model.net_d.register_forward_pre_hook(
        lambda mod, args: trainable.append(all(p.requires_grad for p in mod.parameters()))
    )
    logs = model.train_step([_batch(0)], 1)  # 1 % 2 != 0: discriminator only
    assert set(logs) == {"l_d_real", "out_d_real", "l_d_fake", "out_d_fake"}
    assert not _changed(g0, model.net_g) and _changed(d0, model.net_d)
    assert trainable == [True, True]  # real, fake
    trainable.clear()
    d1 = _copy(model.net_d)
    logs = model.train_step([_batch(1)], 2)
    assert {"l_g_pix", "l_g_percep", "l_g_gan"} <= set(logs) and "l_g_style" not in logs
    assert _changed(g0, model.net_g) and _changed(d1, model.net_d)
    assert trainable == [False, True, True]  # frozen during the generator's GAN term, trained after it
    assert all(p.requires_grad for p in model.net_d.parameters())


def test_bf16_autocast_covers_the_discriminator(vgg: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_opt(vgg, amp="bf16"), CPU)
    seen: list[torch.dtype] = []
    first_conv = next(m for m in model.net_d.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    logs = model.train_step([_batch()], 1)
    assert seen == [torch.bfloat16] * 3  # generator step, real, fake
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    with pytest.raises(ValueError, match=r"train\.amp: fp16 is not supported for GAN models"):
        build_model(_opt(vgg, amp="fp16"), CPU)


def test_pretrained_discriminator_strict_and_relaxed(vgg: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_model(_opt(vgg), CPU)
    weights = save_checkpoint(tmp_path / "net_d.pth", source.net_d)
    loaded = build_model(_opt(vgg, path={"pretrain_network_d": str(weights)}), CPU)
    pairs = zip(source.net_d.state_dict().values(), loaded.net_d.state_dict().values())
    assert all(torch.equal(a, b) for a, b in pairs)
    wider = dict(TINY_D, num_feat=8)
    with pytest.raises(CheckpointError, match=r"path\.strict_load_d: false"):
        build_model(_opt(vgg, network_d=wider, path={"pretrain_network_d": str(weights)}), CPU)
    relaxed = {"pretrain_network_d": str(weights), "strict_load_d": False}
    build_model(_opt(vgg, network_d=wider, path=relaxed), CPU)


def test_state_round_trip_restores_discriminator_and_its_optimizer(vgg: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_opt(vgg), CPU)
    model.lr_d.apply(1)
    model.train_step([_batch(0)], 1)
    state = model.state_dict()
    fresh = build_model(_opt(vgg), CPU)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(model.net_d.state_dict().values(), fresh.net_d.state_dict().values()))
    ours, theirs = model.optimizer_d.state_dict()["state"], fresh.optimizer_d.state_dict()["state"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k]["exp_avg"], theirs[k]["exp_avg"]) for k in ours)
    with pytest.raises(CheckpointError, match="no discriminator"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "net_d"})


def test_usm_targets_follow_the_flags(vgg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build_model(_opt(vgg, l1_gt_usm=False, percep_gt_usm=True, gan_gt_usm=True), CPU)
    batch = _batch()
    sharpened = model.paired_usm(batch["gt"])
    targets: dict[str, torch.Tensor] = {}
    pixel, percep = model.criteria.terms["l_pix"], model.criteria.terms["l_percep"]
    monkeypatch.setattr(pixel, "forward", lambda out, target, **kw: targets.setdefault("pix", target).mean() * 0)
    monkeypatch.setattr(percep, "forward", lambda out, target: (targets.setdefault("percep", target).mean() * 0, None))
    real_inputs: list[torch.Tensor] = []
    model.net_d.register_forward_pre_hook(lambda mod, args: real_inputs.append(args[0].detach().clone()))
    model.train_step([batch], 1)
    assert torch.equal(targets["pix"], batch["gt"]) and torch.equal(targets["percep"], sharpened)
    assert torch.equal(real_inputs[1], sharpened)  # D's real input (the generator step's forward is first)
