"""Training steps replayed against BasicSR's own ``RealESRGANModel`` / ``RealESRNetModel.optimize_parameters``.

The fixtures in ``tests/fixtures/realworld/steps`` (README.md there: provenance, format, tolerances) hold BasicSR's
log values and the G, G-EMA and D state dicts after each of 3-4 iterations on a fixed batch, from fixed initial
weights. Here the same options go through :func:`restore.models.build_model`, the same iterations through
``lr.apply`` + ``train_step`` (as :mod:`restore.models.runner` calls them), and everything is compared.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from restore.models import RealESRGANModel, build_model

CPU = torch.device("cpu")
STEP_FIXTURES = ("gan_default", "gan_variant", "gan_d_iters2", "mse_default")
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
#: Our toolbox's names for BasicSR's model types (registered aliases of the same classes).
MODEL_TYPES = {"RealESRGANModel": "RealHATGANModel", "RealESRNetModel": "RealHATMSEModel"}


def seeded_vgg19_features(seed: int = 7) -> dict[str, torch.Tensor]:
    """The ``features.*`` of torchvision's ``vgg19()`` built under ``torch.manual_seed(seed)``, without torchvision:
    the same modules in the same order (features, then the classifier's three Linear layers, whose default init
    draws from the generator), then torchvision's re-initialisation of the convolutions (Kaiming normal, fan-out)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    in_ch = 3
    for item in VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = int(item)
    features = nn.Sequential(*layers)
    for fan_in, fan_out in ((512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)):
        nn.Linear(fan_in, fan_out)  # only its draws matter
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return {f"features.{k}": v.detach().clone() for k, v in features.state_dict().items()}


def features_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over ``key`` then the raw float32 bytes of each tensor, keys sorted (the fixtures' ``notes``)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def vgg19_seed7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = seeded_vgg19_features()
    path = tmp_path_factory.mktemp("vgg") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    path.with_suffix(".sha256").write_text(features_sha256(state))
    return path


def load_step_fixture(fixtures: Path, name: str) -> dict[str, Any]:
    return torch.load(fixtures / "realworld" / "steps" / f"{name}.pt", weights_only=True)


def our_options(fx: dict[str, Any], vgg_weights: Path, **train_overrides: Any) -> dict[str, Any]:
    """BasicSR's options with only the model type renamed and the perceptual VGG pointed at ``vgg_weights``."""
    opt = copy.deepcopy(fx["options"])
    opt["model_type"] = MODEL_TYPES[opt["model_type"]]
    if "perceptual_opt" in opt["train"]:
        opt["train"]["perceptual_opt"]["vgg_weights"] = str(vgg_weights)
    opt["train"].update(train_overrides)
    return opt


def sampled(t: torch.Tensor, cap: int) -> torch.Tensor:
    """The fixtures' sampling rule: ``t.reshape(-1)[::max(1, ceil(t.numel() / cap))]``."""
    return t.reshape(-1)[:: max(1, math.ceil(t.numel() / cap))]


def state_mismatches(
    name: str,
    ours: nn.Module,
    ref: dict[str, torch.Tensor],
    init: dict[str, torch.Tensor],
    fx: dict[str, Any],
    cap: int,
) -> list[str]:
    """Problems of one state dict against its sampled reference: key sets, shapes, and elements beyond
    ``atol + rtol*|ref|`` (at most ``max(min_count, max_fraction*n)`` of them allowed, each within ``max_abs``)."""
    state = ours.state_dict()
    if set(state) != set(ref):
        return [
            f"{name}: keys differ: ours only {sorted(set(state) - set(ref))}, ref only {sorted(set(ref) - set(state))}"
        ]
    problems: list[str] = []
    total, out, worst = 0, 0, 0.0
    rules = fx["state_outliers"]
    for key, expected in ref.items():
        value = state[key].detach()
        if tuple(value.shape) != tuple(init[key].shape):
            problems.append(f"{name}.{key}: shape {tuple(value.shape)} != {tuple(init[key].shape)}")
            continue
        mine = sampled(value, cap)
        if not expected.is_floating_point():
            if not torch.equal(mine, expected):
                problems.append(f"{name}.{key}: integer buffer differs")
            continue
        diff = (mine.double() - expected.double()).abs()
        bad = diff > fx["atol"] + fx["rtol"] * expected.double().abs()
        total += expected.numel()
        out += int(bad.sum())
        if bool(bad.any()):
            worst = max(worst, float(diff[bad].max()))
    budget = max(rules["min_count"], rules["max_fraction"] * total)
    if out > budget or worst > rules["max_abs"]:
        problems.append(
            f"{name}: {out}/{total} elements out of tolerance (budget {budget:g}), worst |diff| {worst:.3g}"
        )
    return problems


def replay(
    fx: dict[str, Any],
    vgg_weights: Path,
    *,
    stop_early: bool = False,
    iterations: int | None = None,
    drop: tuple[str, ...] = (),
    **train_overrides: Any,
) -> list[str]:
    """Build our model from the fixture's options (top-level keys in ``drop`` left out), load its initial weights,
    run the first ``iterations`` (default all) and list every disagreement with BasicSR's record (empty: all
    within the fixture's tolerances). ``stop_early``: return after the first iteration that disagrees."""
    opt = our_options(fx, vgg_weights, **train_overrides)
    for key in drop:
        del opt[key]
    model = build_model(opt, CPU)
    model.net_g.load_state_dict(fx["init"]["net_g"], strict=True)
    assert model.net_g_ema is not None
    model.net_g_ema.load_state_dict(fx["init"]["net_g"], strict=True)
    gan = isinstance(model, RealESRGANModel)
    if gan:
        model.net_d.load_state_dict(fx["init"]["net_d"], strict=True)
    problems: list[str] = []
    for step in fx["steps"][:iterations]:
        it = step["iteration"]
        model.lr.apply(it)
        logs = model.train_step([{"lq": fx["lq"].clone(), "gt": fx["gt"].clone()}], it)
        if set(logs) != set(step["log"]):
            problems.append(f"it{it}: log keys {sorted(logs)} != {sorted(step['log'])}")
        for key in set(logs) & set(step["log"]):
            ref = step["log"][key]
            if not abs(logs[key] - ref) <= fx["atol"] + fx["rtol"] * abs(ref):
                problems.append(f"it{it}: {key} {logs[key]:.8g} != {ref:.8g}")
        groups = list(model.optimizer.param_groups) + (list(model.optimizer_d.param_groups) if gan else [])
        lrs = [float(g["lr"]) for g in groups]
        if len(lrs) != len(step["lr"]) or any(abs(a - b) > fx["atol"] * b for a, b in zip(lrs, step["lr"])):
            problems.append(f"it{it}: learning rates {lrs} != {step['lr']}")
        cap = int(step["sampling"]["cap"])
        nets = {"net_g": model.net_g, "net_g_ema": model.net_g_ema} | ({"net_d": model.net_d} if gan else {})
        assert set(nets) == {k for k in ("net_g", "net_g_ema", "net_d") if step.get(k) is not None}
        for name, net in nets.items():
            init = fx["init"]["net_d" if name == "net_d" else "net_g"]
            problems += state_mismatches(f"it{it}.{name}", net, step[name], init, fx, cap)
        if problems and stop_early:
            break
    return problems


def test_vgg19_rebuild_matches_the_reference_weights(fixtures: Path, vgg19_seed7: Path) -> None:
    notes = load_step_fixture(fixtures, "gan_default")["notes"]
    expected = notes.split("vgg19_seed7_features_sha256=")[1].split(".")[0]
    assert vgg19_seed7.with_suffix(".sha256").read_text() == expected


@pytest.mark.parametrize("name", STEP_FIXTURES)
def test_train_step_replays_basicsr(name: str, fixtures: Path, vgg19_seed7: Path) -> None:
    problems = replay(load_step_fixture(fixtures, name), vgg19_seed7)
    assert not problems, f"{name}: " + "; ".join(problems[:8])


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("gan_variant", {"ema_decay": 0.999}),  # ema_decay read from the options
        ("gan_variant", {"net_d_init_iters": 0}),  # the generator waits for iteration > net_d_init_iters
        ("gan_d_iters2", {"net_d_iters": 1}),  # the generator steps only every net_d_iters
        ("gan_default", {"gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.2}}),
    ],
    ids=["ema_decay", "net_d_init_iters", "net_d_iters", "gan_weight"],
)
def test_a_changed_option_is_seen(name: str, overrides: dict[str, Any], fixtures: Path, vgg19_seed7: Path) -> None:
    """The comparison is sharp enough to see one option changed from the recorded run."""
    assert replay(load_step_fixture(fixtures, name), vgg19_seed7, stop_early=True, **overrides)


def test_usm_target_defaults_are_the_official_ones(fixtures: Path, vgg19_seed7: Path) -> None:
    """Without ``l1_gt_usm``/``percep_gt_usm``/``gan_gt_usm`` the first iteration is the recorded one, whose options
    set the official values (sharpened GT for L1 and perceptual, plain GT for the discriminator)."""
    fx = load_step_fixture(fixtures, "gan_default")
    assert (fx["options"]["l1_gt_usm"], fx["options"]["percep_gt_usm"], fx["options"]["gan_gt_usm"]) == (
        True,
        True,
        False,
    )
    problems = replay(fx, vgg19_seed7, iterations=1, drop=("l1_gt_usm", "percep_gt_usm", "gan_gt_usm"))
    assert not problems, "; ".join(problems[:8])
