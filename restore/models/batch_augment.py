"""Batch-level training augmentations of DRSformer's pipeline: progressive patch/batch sizes and mixup.

Both draw from the training process's global random generators (Python ``random``, torch), which the training
state saves, so they replay identically after a resume.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

import torch


class ProgressivePatches:
    """Shrink batches by stage (``datasets.train.iters`` / ``mini_batch_sizes`` / ``gt_sizes``).

    Stage ``j`` covers iterations ``(sum(iters[:j]), sum(iters[:j + 1])]`` (iterations past the end stay in the last
    stage). In stage ``j`` a batch of ``batch_size_per_gpu`` items is reduced to ``mini_batch_sizes[j]`` random items
    (``random.sample``), then to a random ``gt_sizes[j]`` GT crop and the aligned LQ crop (offsets drawn with
    ``random.random()``, rows first), as DRSformer/Restormer's training loop does.
    """

    def __init__(self, opt: Mapping[str, Any], scale: int = 1) -> None:
        where = f"datasets.{opt.get('name', 'train')}"
        self.iters = [int(v) for v in opt["iters"]]
        self.batch_sizes = [int(v) for v in opt["mini_batch_sizes"]]
        self.gt_sizes = [int(v) for v in opt["gt_sizes"]]
        if not (len(self.iters) == len(self.batch_sizes) == len(self.gt_sizes)) or not self.iters:
            raise ValueError(
                f"{where}: iters ({len(self.iters)}), mini_batch_sizes ({len(self.batch_sizes)}) and gt_sizes "
                f"({len(self.gt_sizes)}) must be non-empty and of the same length"
            )
        self.full_batch, self.full_size, self.scale = int(opt["batch_size_per_gpu"]), int(opt["gt_size"]), int(scale)
        for size, bs in zip(self.gt_sizes, self.batch_sizes):
            if size > self.full_size or size % self.scale:
                raise ValueError(
                    f"{where}.gt_sizes: {size} must be <= gt_size {self.full_size} and a multiple of scale"
                )
            if not 0 < bs <= self.full_batch:
                raise ValueError(f"{where}.mini_batch_sizes: {bs} must be in 1..batch_size_per_gpu={self.full_batch}")
        self.ends = list(accumulate(self.iters))

    @staticmethod
    def enabled(opt: Mapping[str, Any]) -> bool:
        """True when the dataset options configure progressive training."""
        return all(opt.get(k) for k in ("iters", "mini_batch_sizes", "gt_sizes"))

    def stage(self, iteration: int) -> tuple[int, int]:
        """``(mini_batch_size, gt_patch_size)`` for 1-based ``iteration``."""
        j = next((i for i, end in enumerate(self.ends) if iteration <= end), len(self.ends) - 1)
        return self.batch_sizes[j], self.gt_sizes[j]

    def __call__(self, batch: dict[str, Any], iteration: int) -> dict[str, Any]:
        lq, gt = batch["lq"], batch["gt"]
        mini_batch, mini_size = self.stage(iteration)
        out = dict(batch)
        if mini_batch < lq.shape[0]:
            keep = random.sample(range(lq.shape[0]), k=mini_batch)
            lq, gt = lq[keep], gt[keep]
        if mini_size < gt.shape[-1] or mini_size < gt.shape[-2]:
            lq_size = mini_size // self.scale
            top = int((lq.shape[-2] - lq_size) * random.random())
            left = int((lq.shape[-1] - lq_size) * random.random())
            lq = lq[..., top : top + lq_size, left : left + lq_size]
            s = self.scale
            gt = gt[..., top * s : (top + lq_size) * s, left * s : (left + lq_size) * s]
        out["lq"], out["gt"] = lq, gt
        return out


class MixUp:
    """DRSformer's ``mixing_augs``: with ``lam ~ Beta(beta, beta)`` and a random permutation ``p`` of the batch,
    ``gt <- lam * gt + (1 - lam) * gt[p]`` and the same for ``lq``.

    With ``use_identity`` each batch is left unchanged with probability 1/2 (``random.randint(0, 1)``).
    """

    def __init__(self, beta: float = 1.2, use_identity: bool = False) -> None:
        self.beta, self.use_identity = float(beta), bool(use_identity)
        self.dist = torch.distributions.Beta(torch.tensor([self.beta]), torch.tensor([self.beta]))

    def __call__(self, gt: torch.Tensor, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.use_identity and random.randint(0, 1) == 1:
            return gt, lq
        lam = self.dist.rsample((1, 1)).item()
        perm = torch.randperm(gt.shape[0]).to(gt.device)
        return lam * gt + (1 - lam) * gt[perm], lam * lq + (1 - lam) * lq[perm]


def build_mixup(train_opt: Mapping[str, Any]) -> MixUp | None:
    """A :class:`MixUp` when ``train.mixing_augs.mixup`` is true, else ``None``."""
    spec = train_opt.get("mixing_augs") or {}
    if not spec.get("mixup"):
        return None
    return MixUp(spec.get("mixup_beta") or 1.2, bool(spec.get("use_identity")))
