"""RealESRGANDataset: crop/pad to 400, flips, file lists, and the distribution of the per-sample kernels."""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import restore.data.degradations as degradations
from restore.data.loader import build_dataset
from restore.data.real_esrgan import KERNEL_PAD, draw_blur_kernel, draw_sinc_kernel, seeded_global_rngs

PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]


def _write(folder: Path, name: str, rgb: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def _dataset(folder: Path, **extra) -> torch.utils.data.Dataset:
    opt = {"name": "real", "type": "RealESRGANDataset", "dataroot_gt": str(folder), "phase": "train"}
    return build_dataset({**opt, **extra})


def test_small_images_are_reflect101_padded_and_large_ones_cropped(tmp_path: Path) -> None:
    img = skimage.data.astronaut()
    small = img[:300, :250]
    _write(tmp_path / "gt", "a_small.png", small)
    y, x = np.mgrid[:520, :530]
    coded = np.stack([x % 256, y % 256, (x // 256) * 16 + y // 256], axis=-1).astype(np.uint8)  # position code
    _write(tmp_path / "gt", "b_large.png", coded)
    ds = _dataset(tmp_path / "gt", use_hflip=False, use_rot=False)
    item = ds[(0, 5)]
    assert item["gt"].shape == (3, 400, 400) and item["gt_path"].endswith("a_small.png")
    expected = np.pad(small, ((0, 100), (0, 150), (0, 0)), mode="reflect")  # reflect-101: edge not repeated
    got = (item["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, expected)
    corners = set()
    for seed in range(8):
        large = (ds[(1, seed)]["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        top = int(large[0, 0, 1]) + 256 * int(large[0, 0, 2] % 16)
        left = int(large[0, 0, 0]) + 256 * int(large[0, 0, 2] // 16)
        np.testing.assert_array_equal(large, coded[top : top + 400, left : left + 400])  # a true 400 x 400 window
        corners.add((top, left))
    assert len(corners) > 4


def test_items_depend_only_on_index_and_seed(tmp_path: Path) -> None:
    _write(tmp_path / "gt", "a.png", skimage.data.astronaut())
    ds = _dataset(tmp_path / "gt", use_hflip=True)
    random.seed(1)
    np.random.seed(1)
    before = (random.random(), np.random.random())
    random.seed(1)
    np.random.seed(1)
    a = ds[(0, 123)]
    assert (random.random(), np.random.random()) == before  # the caller's global streams are untouched
    b = ds[(0, 123)]
    c = ds[(0, 124)]
    for key in ("gt", "kernel1", "kernel2", "sinc_kernel"):
        assert torch.equal(a[key], b[key])
        assert a[key].dtype == torch.float32
    assert any(not torch.equal(a[k], c[k]) for k in ("gt", "kernel1", "kernel2", "sinc_kernel"))
    for key in ("kernel1", "kernel2", "sinc_kernel"):
        assert a[key].shape == (KERNEL_PAD, KERNEL_PAD)
        assert float(a[key].sum()) == pytest.approx(1.0, abs=1e-5)


def test_horizontal_flip_half_of_the_time_and_rotation_only_when_asked(tmp_path: Path) -> None:
    img = skimage.data.astronaut()[:400, :400]
    _write(tmp_path / "gt", "a.png", img)
    flips = Counter()
    ds = _dataset(tmp_path / "gt", use_hflip=True, use_rot=False)
    for seed in range(60):
        out = (ds[(0, seed)]["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        flips["h" if np.array_equal(out, img[:, ::-1]) else "none" if np.array_equal(out, img) else "other"] += 1
    assert flips["other"] == 0 and 15 <= flips["h"] <= 45
    rotated = _dataset(tmp_path / "gt", use_hflip=False, use_rot=True)
    outs = [(rotated[(0, s)]["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for s in range(40)]
    assert any(np.array_equal(o, img.transpose(1, 0, 2)) or np.array_equal(o, img[::-1]) for o in outs)


def test_meta_info_selects_files_and_meta_info_file_is_ignored(tmp_path: Path) -> None:
    img = skimage.data.astronaut()
    for name in ("a.png", "b.png", "c.png"):
        _write(tmp_path / "gt", name, img[:64, :64])
    listed = tmp_path / "meta.txt"
    listed.write_text("c.png (64,64,3)\nb.png (64,64,3)\n")
    assert [Path(p).name for p in _dataset(tmp_path / "gt", meta_info=str(listed)).paths] == ["c.png", "b.png"]
    ignored = _dataset(tmp_path / "gt", meta_info_file=str(tmp_path / "missing.txt"), blur_kernel_size=21)
    assert [Path(p).name for p in ignored.paths] == ["a.png", "b.png", "c.png"]


def test_mismatched_kernel_probabilities_name_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "gt", "a.png", skimage.data.astronaut()[:64, :64])
    with pytest.raises(ValueError, match=r"kernel_prob2: 2 probabilities for 6 kernel types"):
        _dataset(tmp_path / "gt", kernel_prob2=[0.5, 0.5])


@pytest.fixture
def kernel_spy(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the kernel family built by each draw (spying on BasicSR's per-family functions)."""
    counts: Counter = Counter()
    module = sys.modules[degradations.random_mixed_kernels.__module__]
    for attr, family in (
        ("random_bivariate_Gaussian", ""),
        ("random_bivariate_generalized_Gaussian", "generalized_"),
        ("random_bivariate_plateau", "plateau_"),
    ):
        original = getattr(module, attr)

        def spy(*args, _original=original, _family=family, **kwargs):
            counts[_family + ("iso" if kwargs.get("isotropic", True) else "aniso")] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, attr, spy)
    original_sinc = degradations.circular_lowpass_kernel

    def sinc_spy(cutoff, kernel_size, pad_to=0):
        counts["sinc"] += 1
        side = kernel_size
        low = math.pi / 3 if side < 13 else math.pi / 5
        assert low <= cutoff <= math.pi
        return original_sinc(cutoff, kernel_size, pad_to)

    monkeypatch.setattr(degradations, "circular_lowpass_kernel", sinc_spy)
    return counts


def _within(count: int, total: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count / total - p) <= sigmas * math.sqrt(p * (1 - p) / total) + 1e-9


def test_kernel_type_frequencies_follow_kernel_prob(kernel_spy: Counter) -> None:
    draws = 3000
    sums = []
    with seeded_global_rngs(2024):
        for _ in range(draws):
            kernel = draw_blur_kernel(KERNELS, PROBS, 0.1, [0.2, 3], [0.5, 4], [1, 2])
            sums.append(kernel.sum())
    assert np.allclose(sums, 1.0)
    assert _within(kernel_spy["sinc"], draws, 0.1)
    mixed = draws - kernel_spy["sinc"]
    assert sum(kernel_spy[k] for k in KERNELS) == mixed
    for name, p in zip(KERNELS, PROBS):
        assert _within(kernel_spy[name], mixed, p), (name, kernel_spy[name], mixed)


def test_final_sinc_probability_and_identity_filter() -> None:
    draws, impulses = 1000, 0
    with seeded_global_rngs(7):
        for _ in range(draws):
            kernel = draw_sinc_kernel(0.8)
            assert kernel.shape == (KERNEL_PAD, KERNEL_PAD)
            if kernel[KERNEL_PAD // 2, KERNEL_PAD // 2] == 1.0 and np.count_nonzero(kernel) == 1:
                impulses += 1
    assert _within(impulses, draws, 0.2)


def test_kernel_sides_are_drawn_from_7_to_21() -> None:
    sides = Counter()
    with seeded_global_rngs(3):
        for _ in range(400):
            kernel = draw_blur_kernel(["iso"], [1.0], 0.0, [2.9, 3], [0.5, 4], [1, 2])
            rows = np.nonzero(kernel.sum(axis=1))[0]
            sides[int(rows[-1] - rows[0] + 1)] += 1
    assert set(sides) == {7, 9, 11, 13, 15, 17, 19, 21}


def test_sinc_cutoffs_come_from_the_official_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cutoff handed to the circular low-pass kernel: final filter U(pi/3, pi); blur kernels U(pi/3, pi) for
    sides below 13 and U(pi/5, pi) from 13 on."""
    seen: list[tuple[float, int]] = []
    real = degradations.circular_lowpass_kernel

    def spy(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
        seen.append((float(cutoff), int(kernel_size)))
        return real(cutoff, kernel_size, pad_to)

    monkeypatch.setattr(degradations, "circular_lowpass_kernel", spy)
    with seeded_global_rngs(5):
        for _ in range(200):
            draw_sinc_kernel(1.0)
    assert len(seen) == 200
    assert all(math.pi / 3 <= c <= math.pi for c, _ in seen)
    assert min(c for c, _ in seen) < math.pi / 3 + 0.1  # the whole range is used
    seen.clear()
    with seeded_global_rngs(6):
        for _ in range(300):
            draw_blur_kernel(["iso"], [1.0], 1.0, [0.2, 3], [0.5, 4], [1, 2])
    small, large = [c for c, k in seen if k < 13], [c for c, k in seen if k >= 13]
    assert len(small) + len(large) == 300 and min(len(small), len(large)) > 50
    assert all(math.pi / 3 <= c <= math.pi for c in small)
    assert all(math.pi / 5 <= c <= math.pi for c in large) and min(large) < math.pi / 3
