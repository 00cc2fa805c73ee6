"""The on-device second-order degradation: sizes, 8-bit grid, noise levels, reproducibility, the pair pool."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from real_helpers import OFFICIAL_DEGRADATION, as_uint8_grid

from restore.data.degradations import DiffJPEG
from restore.data.real_esrgan import draw_blur_kernel, draw_sinc_kernel, seeded_global_rngs
from restore.models.real_degradation import DegradationSettings, PairPool, _add_noise, degrade, paired_random_crop
from restore.models.runner import seed_everything

KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


def _kernels(batch: int, seed: int) -> list[torch.Tensor]:
    with seeded_global_rngs(seed):
        k1 = [draw_blur_kernel(KERNELS, PROBS, 0.1, [0.2, 3], [0.5, 4], [1, 2]) for _ in range(batch)]
        k2 = [draw_blur_kernel(KERNELS, PROBS, 0.1, [0.2, 1.5], [0.5, 4], [1, 2]) for _ in range(batch)]
        sinc = [draw_sinc_kernel(0.8) for _ in range(batch)]
    return [torch.from_numpy(np.stack(k).astype(np.float32)) for k in (k1, k2, sinc)]


def _photo_batch(batch: int, size: int) -> torch.Tensor:
    import skimage.data

    img = torch.from_numpy(skimage.data.astronaut()[:size, : size * batch].astype(np.float32) / 255)
    return torch.stack([img[:, i * size : (i + 1) * size].permute(2, 0, 1) for i in range(batch)])


@pytest.fixture(scope="module")
def jpeger() -> DiffJPEG:
    return DiffJPEG(differentiable=False)


def test_lq_is_gt_over_scale_on_the_8bit_grid(jpeger: DiffJPEG) -> None:
    settings = DegradationSettings.from_options({"scale": 4, **OFFICIAL_DEGRADATION})
    gt = _photo_batch(2, 64)
    outputs = []
    for seed in range(6):  # several draws: both final orders, up/down/keep resizes, Gaussian and Poisson noise
        seed_everything(seed)
        lq = degrade(gt, *_kernels(2, seed), settings, jpeger)
        assert lq.shape == (2, 3, 16, 16) and lq.dtype == torch.float32
        assert as_uint8_grid(lq)
        outputs.append(lq)
    assert len({o.sum().item() for o in outputs}) == len(outputs)
    settings2 = DegradationSettings.from_options({"scale": 2, **OFFICIAL_DEGRADATION})
    seed_everything(0)
    assert degrade(_photo_batch(1, 40), *_kernels(1, 0), settings2, jpeger).shape == (1, 3, 20, 20)


def test_manual_seed_makes_the_stream_reproducible(jpeger: DiffJPEG) -> None:
    settings = DegradationSettings.from_options({"scale": 4, **OFFICIAL_DEGRADATION})
    gt, kernels = _photo_batch(2, 48), _kernels(2, 1)
    runs = []
    for seed in (5, 5, 6):
        seed_everything(seed)
        runs.append(torch.cat([degrade(gt, *kernels, settings, jpeger) for _ in range(3)]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_gaussian_noise_levels_and_gray_share_lie_in_their_ranges() -> None:
    seed_everything(11)
    base = torch.full((400, 3, 24, 24), 0.5)
    noise = _add_noise(base, 1.0, (1.0, 30.0), (0.05, 3.0), 0.4) - base
    sigma = noise.flatten(1).std(dim=1) * 255
    assert float(sigma.min()) > 0.85 and float(sigma.max()) < 30 * 1.12
    assert float(sigma.min()) < 3 and float(sigma.max()) > 26  # the whole range is used
    gray = (noise[:, 0] == noise[:, 1]).all(dim=(1, 2)) & (noise[:, 1] == noise[:, 2]).all(dim=(1, 2))
    share = float(gray.float().mean())
    assert abs(share - 0.4) < 4.5 * math.sqrt(0.24 / 400)


def test_poisson_noise_scales_lie_in_their_range() -> None:
    seed_everything(12)
    gen = torch.Generator().manual_seed(0)
    img = ((torch.rand(300, 3, 32, 32, generator=gen) * 0.4 + 0.3) * 255).round() / 255  # no clipping possible
    noise = _add_noise(img, 0.0, (1.0, 30.0), (0.05, 3.0), 0.0) - img
    distinct = torch.tensor([len(torch.unique(s)) for s in img], dtype=torch.float32)
    vals = 2 ** torch.ceil(torch.log2(distinct))
    unit_std = torch.sqrt(img.flatten(1).mean(dim=1) / vals)  # std of Poisson(img * vals) / vals - img
    scale = noise.flatten(1).std(dim=1) / unit_std
    assert float(scale.min()) > 0.05 * 0.85 and float(scale.max()) < 3 * 1.12
    assert float(scale.min()) < 0.3 and float(scale.max()) > 2.6


def test_paired_crop_is_aligned_and_shared_by_the_batch() -> None:
    random.seed(0)
    lq = torch.arange(2 * 1 * 10 * 12, dtype=torch.float32).reshape(2, 1, 10, 12)
    gt = lq.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    (gt_crop,), lq_crop = paired_random_crop([gt], lq, 16, 4)
    assert lq_crop.shape == (2, 1, 4, 4) and gt_crop.shape == (2, 1, 16, 16)
    assert torch.equal(gt_crop[..., ::4, ::4], lq_crop)
    with pytest.raises(ValueError, match="gt_size"):
        paired_random_crop([gt], lq, 48, 4)


def test_pool_fills_then_swaps_and_every_slot_is_replaced() -> None:
    torch.manual_seed(0)
    pool = PairPool(8, 2)
    ids = iter(range(10_000))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        n = [next(ids), next(ids)]
        lq = torch.tensor(n, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 1, 2, 2).clone()
        return lq, lq.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)

    for _ in range(4):  # filling: the fresh batch is used as is
        lq, gt = batch()
        out_lq, out_gt = pool(lq, gt)
        assert torch.equal(out_lq, lq) and torch.equal(out_gt, gt)
    assert pool.filled == 8
    first_generation = set(pool.lq[:, 0, 0, 0].tolist())
    seen_out: list[float] = []
    for _ in range(60):
        lq, gt = batch()
        out_lq, out_gt = pool(lq, gt)
        assert torch.equal(out_gt[:, :, ::2, ::2], out_lq)  # pairs stay pairs
        assert not set(out_lq[:, 0, 0, 0].tolist()) & set(lq[:, 0, 0, 0].tolist())
        assert set(lq[:, 0, 0, 0].tolist()) <= set(pool.lq[:, 0, 0, 0].tolist())
        seen_out += out_lq[:, 0, 0, 0].tolist()
    assert first_generation <= set(seen_out)  # every slot filled at the start was eventually handed out
    assert not first_generation & set(pool.lq[:, 0, 0, 0].tolist())


def test_pool_state_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pool = PairPool(4, 2)
    gt_float = torch.rand(2, 3, 8, 8)  # not on the 8-bit grid: kept as float
    for _ in range(3):
        pool(torch.rand(2, 3, 2, 2).mul(255).round().div(255), gt_float)
    state = pool.state_dict()
    assert "uint8" in state["lq"] and "tensor" in state["gt"]
    torch.save(state, tmp_path / "pool.pt")
    other = PairPool(4, 2)
    other.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True), torch.device("cpu"))
    assert other.filled == 4 and torch.equal(other.lq, pool.lq) and torch.equal(other.gt, pool.gt)


def test_bad_settings_give_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"^queue_size: 180 is not divisible by datasets.train.batch_size_per_gpu 7"):
        PairPool(180, 7)
    with pytest.raises(ValueError, match=r"^gt_size: 512 is larger than the 400-pixel GT crop"):
        DegradationSettings.from_options({"gt_size": 512})
    with pytest.raises(ValueError, match=r"^resize_prob2: expected \[up, down, keep\]"):
        DegradationSettings.from_options({"resize_prob2": [0.5, 0.5]})
    with pytest.raises(ValueError, match=r"^noise_range: expected low <= high"):
        DegradationSettings.from_options({"noise_range": [30, 1]})


def _trace_degrade(monkeypatch: pytest.MonkeyPatch, settings: DegradationSettings, seed: int) -> list[tuple]:
    """Run :func:`degrade` on a tiny batch and list its stages in order: ``("blur", which kernel)``,
    ``("resize", scale factor or size)``, ``("noise", gaussian prob, sigma range, poisson range, gray prob)`` and
    ``("jpeg", quality range)``, with the real blur and resize underneath."""
    import restore.data.degradations as degradations
    import restore.models.real_degradation as module

    gt = _photo_batch(2, 48)
    kernels = {}
    for name, value in (("kernel1", 0.2), ("kernel2", 0.3), ("sinc", 0.4)):
        k = torch.full((2, 3, 3), (1 - value) / 8)
        k[:, 1, 1] = value
        kernels[name] = k
    events: list[tuple] = []
    real_filter, real_interpolate = degradations.filter2D, torch.nn.functional.interpolate

    def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        events.append(("blur", next(n for n, k in kernels.items() if torch.equal(k, kernel))))
        return real_filter(img, kernel)

    def resize(img: torch.Tensor, size=None, scale_factor=None, mode="bilinear") -> torch.Tensor:
        events.append(("resize", scale_factor if size is None else tuple(size)))
        return real_interpolate(img, size=size, scale_factor=scale_factor, mode=mode)

    def noise(out, gaussian_prob, sigma, poisson, gray):
        events.append(("noise", gaussian_prob, tuple(sigma), tuple(poisson), gray))
        return out

    def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        events.append(("jpeg",))
        return img

    monkeypatch.setattr(degradations, "filter2D", blur)
    monkeypatch.setattr(module, "F", type("F", (), {"interpolate": staticmethod(resize)}))
    monkeypatch.setattr(module, "_add_noise", noise)
    with seeded_global_rngs(seed):
        lq = degrade(gt, kernels["kernel1"], kernels["kernel2"], kernels["sinc"], settings, jpeg)
    assert lq.shape == (2, 3, 12, 12)
    return events


def test_degradation_stages_their_order_and_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probabilities at 0 and 1 decide which stages run; the stage-2 keys are the ``*2`` ones; the final sinc
    filter always follows the resize to the LQ size; up/down factors come from their own side of the range."""
    base = dict(
        scale=4, gt_size=48, resize_prob=(1.0, 0.0, 0.0), resize_range=(0.5, 1.5), resize_prob2=(0.0, 1.0, 0.0),
        resize_range2=(0.6, 1.2), gaussian_noise_prob=0.25, noise_range=(1.0, 30.0), poisson_scale_range=(0.05, 3.0),
        gray_noise_prob=0.11, gaussian_noise_prob2=0.75, noise_range2=(2.0, 25.0), poisson_scale_range2=(0.1, 2.5),
        gray_noise_prob2=0.77,
    )  # fmt: skip
    orders = set()
    for seed in range(8):
        for second_blur in (0.0, 1.0):
            events = _trace_degrade(monkeypatch, DegradationSettings(**base, second_blur_prob=second_blur), seed)
            first, second, final = events[:4], events[4:-3], events[-3:]
            assert [e[0] for e in first] == ["blur", "resize", "noise", "jpeg"] and first[0][1] == "kernel1"
            assert 1 <= first[1][1] <= 1.5  # resize_prob (1, 0, 0): always up, factor in [1, resize_range[1]]
            assert first[2][1:] == (0.25, (1.0, 30.0), (0.05, 3.0), 0.11)
            expected = [("blur", "kernel2")] if second_blur else []
            assert second[: len(expected)] == expected
            resize2, noise2 = second[len(expected) :]
            assert resize2[0] == "resize" and all(int(12 * 0.6) <= s <= 12 for s in resize2[1])  # down only
            assert noise2[1:] == (0.75, (2.0, 25.0), (0.1, 2.5), 0.77)
            kinds = [e[0] for e in final]
            assert kinds in (["resize", "blur", "jpeg"], ["jpeg", "resize", "blur"])
            resize_at = kinds.index("resize")
            assert final[resize_at][1] == (12, 12) and final[resize_at + 1] == ("blur", "sinc")
            orders.add(tuple(kinds))
    assert len(orders) == 2
    # down only in stage 1, up only in stage 2 (sizes relative to the LQ size)
    flipped = dict(base, resize_prob=(0.0, 1.0, 0.0), resize_prob2=(1.0, 0.0, 0.0))
    for seed in range(4):
        events = _trace_degrade(monkeypatch, DegradationSettings(**flipped, second_blur_prob=0.0), seed)
        assert 0.5 <= events[1][1] <= 1 and all(12 <= s <= int(12 * 1.2) for s in events[4][1])
