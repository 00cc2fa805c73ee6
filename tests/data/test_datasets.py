"""Training/validation datasets, transforms and the resumable sampler, on small PNGs cut from a real photo."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from restore.data import transforms
from restore.data.datasets import Dataset_PairedImage, PairedImageDataset, SingleImageDataset
from restore.data.imresize import imresize, round_to_uint8
from restore.data.loader import build_dataset, build_train_loader
from restore.data.sampler import TrainSampler
from restore.utils.registry import DATASET_REGISTRY


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def _lq(gt: np.ndarray, scale: int) -> np.ndarray:
    return round_to_uint8(imresize(gt.astype(np.float64) / 255, 1 / scale))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, list[np.ndarray]]:
    """Three GT crops (sides not multiples of 2, like benchmark HR images) and their x2 LQ as ``<name>x2.png``."""
    img = skimage.data.astronaut()
    gts = [img[10 * i : 10 * i + 33, 20 * i : 20 * i + 27] for i in range(3)]
    for i, gt in enumerate(gts):
        _write(tmp_path / "gt" / f"im{i}.png", gt)
        _write(tmp_path / "lq" / f"im{i}x2.png", _lq(gt[:32, :26], 2))
    return tmp_path / "gt", tmp_path / "lq", gts


def _opt(gt: Path, lq: Path | None, **extra: object) -> dict:
    opt = {
        "name": "t",
        "type": "PairedImageDataset",
        "dataroot_gt": str(gt),
        "dataroot_lq": None if lq is None else str(lq),
    }
    opt.update(filename_tmpl="{}x2", scale=2, phase="val", io_backend={"type": "disk"})
    opt.update(extra)
    return opt


def test_whole_images_are_rgb_float_and_gt_is_mod_cropped(folders: tuple) -> None:
    gt_dir, lq_dir, gts = folders
    ds = build_dataset(_opt(gt_dir, lq_dir))
    assert isinstance(ds, PairedImageDataset) and len(ds) == 3
    item = ds[1]
    assert set(item) == {"lq", "gt", "lq_path", "gt_path"}
    assert item["gt"].dtype == torch.float32 and item["gt"].shape == (3, 32, 26) and item["lq"].shape == (3, 16, 13)
    want_gt = torch.from_numpy(gts[1][:32, :26].transpose(2, 0, 1).astype(np.float32) / 255)
    torch.testing.assert_close(item["gt"], want_gt, rtol=0, atol=0)  # RGB order, [0, 1]
    assert item["lq_path"].endswith("im1x2.png") and item["gt_path"].endswith("im1.png")


def test_training_crop_is_aligned_and_augmented_consistently(folders: tuple) -> None:
    gt_dir, lq_dir, _ = folders
    ds = build_dataset(_opt(gt_dir, lq_dir, phase="train", gt_size=12, use_hflip=True, use_rot=True))
    seen = set()
    for seed in range(12):
        item = ds[(0, seed)]
        assert item["gt"].shape == (3, 12, 12) and item["lq"].shape == (3, 6, 6)
        # LQ is the bicubic image of the GT patch up to boundary effects: compare interiors after downscaling
        down = imresize(item["gt"].numpy().transpose(1, 2, 0).astype(np.float64), 0.5)
        assert np.abs(down[1:-1, 1:-1] - item["lq"].numpy().transpose(1, 2, 0)[1:-1, 1:-1]).mean() < 0.03
        torch.testing.assert_close(ds[(0, seed)]["gt"], item["gt"])  # same seed, same sample
        seen.add(tuple(item["gt"][0, 0, :3].tolist()))
    assert len(seen) > 3  # different seeds give different crops/flips


def test_size_mismatch_names_both_files(folders: tuple) -> None:
    gt_dir, lq_dir, _ = folders
    _write(lq_dir / "im2x2.png", np.zeros((10, 13, 3), np.uint8))
    ds = build_dataset(_opt(gt_dir, lq_dir))
    with pytest.raises(ValueError, match=r"GT .*im2\.png is 33x27 .* LQ .*im2x2\.png is 10x13; expected LQ 16x13"):
        ds[2]


def test_missing_and_unmatched_files_are_named(folders: tuple) -> None:
    gt_dir, lq_dir, _ = folders
    (lq_dir / "im0x2.png").rename(lq_dir / "other.png")
    with pytest.raises(FileNotFoundError, match=r"im0x2\.png: LQ image for GT .*im0\.png not found"):
        build_dataset(_opt(gt_dir, lq_dir))
    (lq_dir / "other.png").rename(lq_dir / "im0x2.png")
    _write(lq_dir / "stray.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"stray\.png"):
        build_dataset(_opt(gt_dir, lq_dir))


def test_meta_info_file_lists_pairs(folders: tuple, tmp_path: Path) -> None:
    gt_dir, lq_dir, _ = folders
    meta = tmp_path / "meta.txt"
    meta.write_text("im2.png (33,27,3)\nim0.png (33,27,3)\n")
    ds = build_dataset(_opt(gt_dir, lq_dir, meta_info_file=str(meta)))
    assert [Path(g).name for g, _ in ds.paths] == ["im2.png", "im0.png"]


def test_gt_only_makes_bicubic_lq(folders: tuple) -> None:
    gt_dir, _, gts = folders
    ds = build_dataset(_opt(gt_dir, None))
    item = ds[0]
    want = _lq(gts[0][:32, :26], 2).astype(np.float32).transpose(2, 0, 1) / 255
    torch.testing.assert_close(item["lq"], torch.from_numpy(want), rtol=0, atol=0)
    assert item["gt"].shape == (3, 32, 26) and item["lq_path"] == item["gt_path"]
    train = build_dataset(_opt(gt_dir, None, phase="train", gt_size=16, use_hflip=True))
    patch = train[(1, 5)]
    want_lq = _lq((patch["gt"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), 2)
    torch.testing.assert_close(patch["lq"], torch.from_numpy(want_lq.transpose(2, 0, 1) / np.float32(255)))
    with pytest.raises(ValueError, match="dataroot_lq: required when scale is 1"):
        build_dataset(_opt(gt_dir, None, scale=1))


def test_drsformer_pairs_pad_small_images_and_use_dihedral_augs(tmp_path: Path) -> None:
    img = skimage.data.chelsea()
    clean, rainy = img[:20, :30], np.clip(img[:20, :30].astype(int) + 40, 0, 255).astype(np.uint8)
    _write(tmp_path / "target" / "1.png", clean)
    _write(tmp_path / "input" / "1.png", rainy)
    opt = {"name": "rain", "type": "Dataset_PairedImage", "dataroot_gt": str(tmp_path / "target")}
    opt.update(dataroot_lq=str(tmp_path / "input"), scale=1, phase="train", gt_size=24, geometric_augs=True)
    ds = DATASET_REGISTRY.get("Dataset_PairedImage")(opt)
    assert isinstance(ds, Dataset_PairedImage)
    item = ds[(0, 3)]
    assert item["gt"].shape == (3, 24, 24) == item["lq"].shape
    # the rain offset survives every crop/pad/rotation identically on both images
    diff = (item["lq"] - item["gt"]) * 255
    assert diff.min() >= -0.5 and diff.max() <= 40.5
    with pytest.raises(ValueError, match=r"1\.png: LQ image 20x30 is smaller than the 24x24 training patch"):
        PairedImageDataset(dict(opt, type="PairedImageDataset"))[(0, 1)]  # BasicSR's dataset does not pad


def test_single_image_dataset(folders: tuple) -> None:
    _, lq_dir, _ = folders
    ds = SingleImageDataset({"name": "s", "dataroot_lq": str(lq_dir), "io_backend": {"type": "disk"}})
    item = ds[0]
    assert set(item) == {"lq", "lq_path"} and item["lq"].shape == (3, 16, 13)


def test_flip_rotate_matches_numpy() -> None:
    img = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    rng = random.Random(0)
    reference = random.Random(0)
    draws = [reference.random() < 0.5 for _ in range(3)]
    want = img
    if draws[0]:
        want = want[:, ::-1]
    if draws[1]:
        want = want[::-1]
    if draws[2]:
        want = want.transpose(1, 0, 2)
    (got,) = transforms.flip_rotate([img], True, True, rng)
    assert np.array_equal(got, want)
    untouched = random.Random(1)
    assert transforms.flip_rotate([img], False, False, untouched)[0] is img
    assert untouched.random() == random.Random(1).random()  # disabled options draw nothing


def test_dihedral_modes_are_the_eight_symmetries() -> None:
    img = np.arange(6).reshape(2, 3, 1)
    outs = {transforms.dihedral(img, m).tobytes() + bytes(transforms.dihedral(img, m).shape) for m in range(8)}
    assert len(outs) == 8
    assert np.array_equal(transforms.dihedral(img, 3), np.flipud(np.rot90(img)))


def test_sampler_partitions_resumes_and_seeds() -> None:
    data = list(range(10))
    full = TrainSampler(data, shuffle=True, seed=3)
    full.set_epoch(2)
    items = list(full)
    assert sorted(i for i, _ in items) == data and len({s for _, s in items}) == 10
    resumed = TrainSampler(data, shuffle=True, seed=3)
    resumed.set_epoch(2, start=4)
    assert list(resumed) == items[4:] and len(resumed) == 6
    ranks = [TrainSampler(data, world_size=3, rank=r, enlarge_ratio=2, seed=3) for r in range(3)]
    for s in ranks:
        s.set_epoch(0)
    shares = [list(s) for s in ranks]
    assert all(len(s) == 7 for s in shares)  # ceil(10 * 2 / 3)
    merged = [x for share in shares for x in share]
    counts = Counter(i for i, _ in merged)
    assert sorted(counts) == data and sorted(counts.values()) == [2] * 9 + [3]  # 21 positions over 10 images
    assert len({seed for _, seed in merged}) == 21  # every position has its own augmentation seed
    plain = TrainSampler(data, shuffle=False)
    assert [i for i, _ in plain] == data


def test_train_loader_is_independent_of_workers(folders: tuple) -> None:
    gt_dir, lq_dir, _ = folders
    opt = _opt(gt_dir, lq_dir, phase="train", gt_size=8, use_hflip=True, use_rot=True, batch_size_per_gpu=2)
    ds = build_dataset(opt)
    batches = []
    for workers in (0, 2):
        loader, sampler = build_train_loader(ds, dict(opt, num_worker_per_gpu=workers, dataset_enlarge_ratio=2), seed=1)
        sampler.set_epoch(1)
        batches.append([b["gt"] for b in loader])
    assert len(batches[0]) == 3
    for a, b in zip(*batches):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="fewer than batch_size_per_gpu=8"):
        build_train_loader(ds, dict(opt, batch_size_per_gpu=8))
