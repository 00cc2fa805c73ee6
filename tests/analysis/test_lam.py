"""Local Attribution Maps: the golden fixtures of the official LAM code (tests/fixtures/lam), every family against
an independent step-by-step reference, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lam_helpers import parity_input, parity_network
from torch_threads import one_thread_fixture

from restore.analysis import LamResult, lam
from restore.analysis.lam import LamError, blur_path, gini
from restore.analysis.lam_figures import heat_map, kde_heat_map

one_thread = one_thread_fixture()

FAST = ["lam_hat_x2_edge"]
SLOW = ["lam_hat_x4_demo", "lam_drct_x4"]


def _close(name: str, result, reference, tolerances: dict) -> None:
    atol = tolerances[name]["atol"]
    result = torch.as_tensor(result, dtype=torch.float64)
    reference = torch.as_tensor(reference, dtype=torch.float64)
    assert result.shape == reference.shape, name
    deviation = (result - reference).abs().max().item()
    assert deviation <= atol, f"{name}: max deviation {deviation:.3g} > atol {atol:.3g}"


def _vis_close(name: str, image: np.ndarray, reference: np.ndarray, tolerances: dict) -> None:
    rule = tolerances[name]
    assert image.shape == (*reference.shape[:2], 3), name
    diff = np.abs(image.astype(int) - reference[..., :3].astype(int))
    assert diff.max() <= rule["max_level"], name
    assert diff.any(axis=-1).mean() <= rule["max_frac"], name


def _check_fixture(fixtures: Path, name: str, batch: int) -> None:
    fx = torch.load(fixtures / "lam" / f"{name}.pt", weights_only=True)
    assert fx["format"] == "lam_fixture_v1"
    tol = fx["tolerances"]
    net = parity_network(fixtures, fx["network_fixture"])
    steps = fx["debug_steps"]
    result = lam(
        net, fx["input"][0], fx["w"], fx["h"], fx["window"], fx["sigma"], fx["fold"], fx["l"],
        batch=batch, keep_steps=steps,
    )  # fmt: skip
    assert isinstance(result, LamResult)
    for key, value in (
        ("attribution", result.attribution),
        ("saliency", result.saliency),
        ("saliency_abs", result.saliency_abs),
        ("sr_output", result.sr),
        ("objective_values", result.objective),
        ("diffusion_index", result.di),
        ("gini", result.gini),
    ):
        _close(key, value, fx[key], tol)
    images, derivatives = blur_path(fx["input"], fx["sigma"], fx["fold"], fx["l"], steps)
    _close("path_images", images, fx["path_images"], tol)
    _close("path_derivatives", derivatives, fx["path_derivatives"], tol)
    grads = torch.stack([result.step_grads[i] for i in steps])
    _close("step_input_grads", grads, fx["step_input_grads"], tol)
    _close("step_grad_x_derivative", grads * derivatives, fx["step_grad_x_derivative"], tol)
    _vis_close("vis_saliency", heat_map(result.saliency), fx["vis_saliency"].numpy(), tol)
    _vis_close("vis_saliency_kde", kde_heat_map(result.saliency), fx["vis_saliency_kde"].numpy(), tol)


@pytest.mark.parametrize("name", FAST)
def test_matches_the_official_lam_fixture(fixtures: Path, name: str) -> None:
    _check_fixture(fixtures, name, batch=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_matches_the_official_lam_fixture_slow(fixtures: Path, name: str) -> None:
    _check_fixture(fixtures, name, batch=5)


def test_fixture_index_lists_every_fixture(fixtures: Path) -> None:
    index = json.loads((fixtures / "lam" / "index.json").read_text())
    assert sorted(f["name"] for f in index["fixtures"]) == sorted(FAST + SLOW)


def test_edge_window_is_cut_at_the_gradient_map_border(fixtures: Path) -> None:
    net = parity_network(fixtures, "hat_tiny_x2_arch.pt")
    lr = torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(0))
    result = lam(net, lr, 70, 40, 12, fold=2)
    assert result.box == (70, 40, 9, 7)  # SR 48x80: the gradient map is 47x79


# ---------------------------------------------------------------------------------------------------------------
# Independent reference: OpenCV filtering, one step at a time, the objective on the whole gradient map.


def _reference(net: torch.nn.Module, lr: torch.Tensor, x: int, y: int, window: int, sigma: float, fold: int, l: int):
    image = lr[0].permute(1, 2, 0).numpy().astype(np.float32)  # H, W, C
    offsets = np.arange(-(l // 2), l // 2 + 1, dtype=np.float64)
    kernels = []
    for s in np.linspace(sigma, 0, fold + 1):
        k = np.exp(-(offsets[:, None] ** 2 + offsets[None] ** 2) / (2 * (s + 1e-5) ** 2))
        kernels.append(k / k.sum())
    total = np.zeros(lr.shape[1:], np.float64)
    for i in range(fold):
        step = cv2.filter2D(image, -1, kernels[i + 1], borderType=cv2.BORDER_REFLECT_101)
        deriv = cv2.filter2D(image, -1, (kernels[i + 1] - kernels[i]) * fold, borderType=cv2.BORDER_REFLECT_101)
        inp = torch.from_numpy(step).permute(2, 0, 1)[None].clone().requires_grad_(True)
        out = net(inp)
        gy = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
        gx = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
        magnitude = torch.sqrt(gy[:, :, :, :-1] + gx[:, :, :-1, :])
        magnitude[:, :, y : y + window, x : x + window].sum().backward()
        grad = torch.nan_to_num(inp.grad[0], nan=0.0).double().numpy()
        total += grad * np.moveaxis(deriv, 2, 0)
    attribution = total / fold
    flat = np.abs(attribution.sum(0))
    return attribution, flat / flat.max()


FAMILIES = [
    ("hat_tiny_x4_arch.pt", (16, 16), 4),
    ("drct_tiny_x4_arch.pt", (16, 16), 8),
    ("dlgsanet_tiny_x4_arch.pt", (20, 24), 12),
    ("drsformer_tiny_arch.pt", (24, 32), 10),
]


@pytest.mark.parametrize(("fixture", "size", "corner"), FAMILIES, ids=[f[0].split("_")[0] for f in FAMILIES])
def test_every_family_matches_the_step_by_step_reference(
    fixtures: Path, fixture: str, size: tuple[int, int], corner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = parity_network(fixtures, fixture)
    h, w = size
    lr = parity_input(fixtures, fixture)[..., :h, :w].clamp(0, 1)
    x, y, window, sigma, fold, l = corner, corner, 8, 1.5, 3, 5
    result = lam(net, lr, x, y, window, sigma, fold, l, batch=2)  # default backend: torch on CPU
    monkeypatch.setenv("RESTORE_OPS", "naive")  # the reference differentiates the official arithmetic
    attribution, saliency = _reference(net, lr, x, y, window, sigma, fold, l)
    scale = attribution.__abs__().max()
    assert scale > 0
    np.testing.assert_allclose(result.attribution.double().numpy(), attribution, atol=1e-4 * scale, rtol=0)
    np.testing.assert_allclose(result.saliency.numpy(), saliency, atol=1e-4, rtol=0)
    assert result.saliency.shape == (h, w) and result.attribution.shape == (3, h, w)
    assert 0 < result.di < 100 and result.di == pytest.approx((1 - result.gini) * 100)
    assert result.sr.shape == (1, 3, h * net.scale, w * net.scale)


def test_batching_does_not_change_the_map(fixtures: Path) -> None:
    net = parity_network(fixtures, "hat_tiny_x4_arch.pt")
    lr = parity_input(fixtures, "hat_tiny_x4_arch.pt")[..., :16, :16].clamp(0, 1)
    one = lam(net, lr, 20, 24, 16, fold=5, batch=1)
    many = lam(net, lr, 20, 24, 16, fold=5, batch=3)
    torch.testing.assert_close(many.attribution, one.attribution, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(many.objective, one.objective, atol=1e-4, rtol=1e-6)
    assert many.di == pytest.approx(one.di, abs=1e-3)


def test_runs_in_eval_mode_and_leaves_the_network_as_it_was(fixtures: Path) -> None:
    from lam_helpers import parity_file

    from restore.archs import build_network

    fx = torch.load(parity_file(fixtures, "hat_tiny_x2_arch.pt"), weights_only=True)
    net = build_network({"type": "HAT", **fx["kwargs"], "drop_path_rate": 0.5})  # the demo's active stochastic depth
    net.load_state_dict(fx["state_dict"], strict=True)
    lr = fx["input"][..., :16, :16].clamp(0, 1)
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(lr), net(lr))  # train mode: random outputs, as in the demo
    first = lam(net, lr, 8, 8, 8, fold=3)
    second = lam(net, lr, 8, 8, 8, fold=3)
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    torch.testing.assert_close(first.attribution, second.attribution, atol=0, rtol=0)
    net.eval()
    third = lam(net, lr, 8, 8, 8, fold=3)
    torch.testing.assert_close(first.attribution, third.attribution, atol=0, rtol=0)


def test_input_not_a_multiple_of_the_window_is_padded_like_the_test_pipeline(fixtures: Path) -> None:
    from restore.engine import infer

    net = parity_network(fixtures, "hat_tiny_x4_arch.pt")
    lr = parity_input(fixtures, "hat_tiny_x4_arch.pt")[..., :13, :19].clamp(0, 1)
    result = lam(net, lr, 8, 8, 16, fold=2)
    with torch.no_grad():
        expected = infer(net, lr)
    torch.testing.assert_close(result.sr, expected, atol=1e-5, rtol=1e-5)


def test_gini_of_known_maps() -> None:
    assert gini(np.ones((8, 8), np.float32)) == pytest.approx(0.0, abs=1e-6)
    spike = np.zeros((10, 10), np.float32)
    spike[3, 4] = 1.0
    assert gini(spike) == pytest.approx(1 - 1 / 100, abs=1e-4)  # one pixel of n: (n - 1) / n
    ramp = np.arange(1, 5, dtype=np.float32)  # sum_i (2i - n - 1) a_i / (n sum a) = 10 / 40
    assert gini(ramp[::-1].copy()) == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-1, 0), {}, "outside the image"),
        ((63, 0), {}, "outside the image"),  # SR 64 wide: the gradient map ends at column 62
        ((0, 70), {}, "outside the image"),
        ((0, 0), {"window": 0}, "at least 1"),
        ((2, 4), {"strict": True}, "multiples of the scale 4"),
        ((4, 4), {"window": 10, "strict": True}, "multiples of the scale 4"),
        ((56, 0), {"strict": True}, r"must lie inside the image \(with size 16: x in 0\.\.48, y in 0\.\.48\)"),
        ((1.5, 0), {}, "integer"),
        ((0, 0), {"fold": 0}, "fold"),
        ((0, 0), {"batch": 0}, "batch"),
    ],
)
def test_bad_windows_and_parameters_are_one_line_errors(fixtures: Path, args, kwargs, message) -> None:
    net = parity_network(fixtures, "hat_tiny_x4_arch.pt")
    lr = torch.rand(3, 16, 16)
    with pytest.raises(LamError, match=message) as info:
        lam(net, lr, *args, **kwargs)
    assert "\n" not in str(info.value)


def test_image_too_small_for_the_network(fixtures: Path) -> None:
    net = parity_network(fixtures, "hat_tiny_x4_arch.pt")  # window_size 8
    with pytest.raises(LamError, match=r"too small for HAT .*at least 8x8"):
        lam(net, torch.rand(3, 6, 16), 0, 0)
    with pytest.raises(LamError, match=r"\(3, H, W\) or \(1, 3, H, W\)"):
        lam(net, torch.rand(1, 16, 16), 0, 0)


@pytest.mark.slow
def test_gradients_through_the_triton_kernels_match_the_naive_ops(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = parity_network(fixtures, "hat_tiny_x4_arch.pt")
    lr = parity_input(fixtures, "hat_tiny_x4_arch.pt")[..., :8, :8].clamp(0, 1)
    monkeypatch.setenv("RESTORE_OPS", "triton")  # CPU tensors: the Triton interpreter (tests/conftest.py)
    fused = lam(net, lr, 8, 8, 8, fold=1, l=3)
    monkeypatch.setenv("RESTORE_OPS", "naive")
    naive = lam(net, lr, 8, 8, 8, fold=1, l=3)
    scale = naive.attribution.abs().max()
    assert scale > 0
    torch.testing.assert_close(fused.attribution, naive.attribution, atol=1e-5 * scale, rtol=0)
