"""Each loss against its formula written out directly, reductions, weights, registry and the LPIPS paths."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from restore.losses import LOSS_REGISTRY, CharbonnierLoss, FFTLoss, L1Loss, LPIPSLoss, MSELoss, build_loss


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 5, 7, generator=gen, dtype=torch.float64), torch.rand(
        2, 3, 5, 7, generator=gen, dtype=torch.float64
    )


def _elementwise(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = pred - target
    if name == "L1Loss":
        return d.abs()
    if name == "MSELoss":
        return d * d
    return (d * d + 1e-12) ** 0.5  # CharbonnierLoss, BasicSR eps under the root


@pytest.mark.parametrize("name", ["L1Loss", "MSELoss", "CharbonnierLoss"])
def test_pixel_losses_match_formula(name: str, pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = pair
    e = _elementwise(name, pred, target)
    n = e.numel()
    mean = build_loss({"type": name, "loss_weight": 0.5})(pred, target)
    torch.testing.assert_close(mean, 0.5 * e.sum() / n, rtol=1e-12, atol=0)
    total = build_loss({"type": name, "reduction": "sum"})(pred, target)
    torch.testing.assert_close(total, e.sum(), rtol=1e-12, atol=0)
    full = build_loss({"type": name, "reduction": "none", "loss_weight": 2.0})(pred, target)
    torch.testing.assert_close(full, 2 * e, rtol=1e-12, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_weighted_mean_averages_over_the_weighted_region(
    channels: int, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    pred, target = pair
    weight = torch.zeros(2, channels, 5, 7, dtype=torch.float64)
    weight[:, :, 1:3, 2:6] = 1.0
    mask = weight.expand(2, 3, 5, 7)
    expected = ((pred - target).abs() * mask).sum() / mask.sum()
    torch.testing.assert_close(L1Loss()(pred, target, weight), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        L1Loss(reduction="sum")(pred, target, weight), ((pred - target).abs() * mask).sum(), rtol=1e-12, atol=0
    )


def test_charbonnier_eps_is_under_the_root() -> None:
    zero = torch.zeros(1, 1, 2, 2)
    assert CharbonnierLoss(eps=1e-4)(zero, zero).item() == pytest.approx(1e-2, rel=1e-6)


def test_fft_loss_matches_dft_formula(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = pair
    h, w = pred.shape[-2:]
    # the 2-D DFT written as two matrix products
    ky = torch.arange(h, dtype=torch.float64)
    kx = torch.arange(w, dtype=torch.float64)
    fy = torch.exp(-2j * torch.pi * torch.outer(ky, ky) / h)
    fx = torch.exp(-2j * torch.pi * torch.outer(kx, kx) / w)
    spectrum = lambda x: fy @ x.to(torch.complex128) @ fx.T  # noqa: E731
    d = spectrum(pred) - spectrum(target)
    expected = torch.cat([d.real.abs().flatten(), d.imag.abs().flatten()]).mean()
    got = FFTLoss(loss_weight=0.25)(pred, target)
    torch.testing.assert_close(got.double(), 0.25 * expected, rtol=1e-5, atol=1e-7)


def test_losses_give_gradients_and_reject_bad_arguments(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    pred, target = (t.float() for t in pair)
    pred.requires_grad_(True)
    (L1Loss()(pred, target) + FFTLoss()(pred, target) + MSELoss()(pred, target)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError, match="reduction must be one of"):
        L1Loss(reduction="avg")
    with pytest.raises(ValueError, match="differ"):
        L1Loss()(pred, target[:, :, :4])
    with pytest.raises(TypeError, match=r"train\.pixel_opt: L1Loss"):
        build_loss({"type": "L1Loss", "weight": 1.0}, where="train.pixel_opt")
    with pytest.raises(KeyError, match=r"MultiScaleGANLoss is not supported.*GANLoss"):
        build_loss({"type": "MultiScaleGANLoss", "gan_type": "vanilla"})
    with pytest.raises(KeyError, match="Registered"):
        build_loss({"type": "L2Loss"})
    assert {"L1Loss", "MSELoss", "CharbonnierLoss", "FFTLoss", "LPIPSLoss"} <= set(LOSS_REGISTRY.keys())


def test_lpips_loss_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes ``import lpips`` fail even if it were installed
    with pytest.raises(ImportError, match=r"LPIPSLoss: .*lpips.*install"):
        build_loss({"type": "LPIPSLoss", "loss_weight": 1.0}, where="train.perceptual_opt")


def test_lpips_loss_feeds_signed_inputs_and_freezes_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in ``lpips`` module: inputs are mapped [0, 1] -> [-1, 1], weights frozen, reduction applied."""
    seen = {}

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net: str, verbose: bool) -> None:
            super().__init__()
            seen["net"] = net
            self.scale = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            seen["range"] = (float(a.detach().min()), float(a.detach().max()))
            return self.scale * (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=FakeLPIPS))
    loss = LPIPSLoss(loss_weight=2.0, net="vgg")
    pred = torch.zeros(2, 3, 4, 4, requires_grad=True)
    target = torch.ones(2, 3, 4, 4)
    value = loss(pred, target)
    assert seen["net"] == "vgg" and seen["range"] == (-1.0, -1.0)
    assert value.item() == pytest.approx(2.0 * 2.0)  # |(-1) - 1| = 2 per image, weight 2
    value.backward()
    assert pred.grad is not None and loss.metric.scale.grad is None
    loss.train()
    assert not loss.metric.training
    assert LPIPSLoss(reduction="none")(pred, target).shape == (2,)
