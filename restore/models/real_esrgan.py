"""Real-ESRGAN-style training: the degradation feed step and the MSE-stage model.

``model_type`` ``RealESRNetModel`` (BasicSR), ``RealHATMSEModel`` (HAT) and ``RealDRCTMSEModel`` (DRCT) build
:class:`RealESRNetModel`: the training model whose feed step synthesises LQ images from the GT crops of
``RealESRGANDataset`` on the training device (:class:`DegradationFeed`), then trains as
:class:`RestorationModel` does. With ``high_order_degradation: false`` the model trains on paired data instead.

Feed step (:meth:`DegradationFeed.__call__`), under ``torch.no_grad``:

1. ``gt_usm = USMSharp(gt)`` (GAN stage, or MSE stage with ``gt_usm: true``, where it also becomes the target);
2. LQ = :func:`restore.models.real_degradation.degrade` of ``gt_usm`` (of the plain GT in an MSE stage without
   ``gt_usm``);
3. one random ``gt_size`` window (the LQ window ``gt_size / scale``) for the whole batch;
4. the pair pool (``queue_size``);
5. GAN stage: ``gt_usm`` recomputed on the GT crops that came out of the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from restore.models.dist import DistInfo
from restore.models.real_degradation import DegradationSettings, PairPool, degrade, paired_random_crop
from restore.models.restoration import RestorationModel
from restore.utils.registry import MODEL_REGISTRY

__all__ = ["MSE_MODEL_TYPES", "DegradationFeed", "FedBatch", "RealESRNetModel", "uses_degradation"]

#: Official ``model_type`` names of the MSE stage.
MSE_MODEL_TYPES = ("RealESRNetModel", "RealHATMSEModel", "RealDRCTMSEModel")


def uses_degradation(opt: Mapping[str, Any]) -> bool:
    """``high_order_degradation`` (default true, as in the official models)."""
    return opt.get("high_order_degradation") is not False


@dataclass
class FedBatch:
    """A training batch on the device: ``lq`` (B, 3, h, w), ``gt`` and ``gt_usm`` (B, 3, h*scale, w*scale)."""

    lq: torch.Tensor
    gt: torch.Tensor
    gt_usm: torch.Tensor | None = None


class DegradationFeed:
    """Synthesises training pairs from ``RealESRGANDataset`` batches (module docstring).

    Args:
        opt: validated options (top-level degradation keys, ``scale``, ``datasets.train.batch_size_per_gpu``).
        device: the training device (where the degradation runs).
        sharpen_target: the MSE stage's ``gt_usm`` (train against the sharpened GT).
        keep_usm: the GAN stage: also return the sharpened GT of the pooled crops.

    Raises:
        ValueError: ``queue_size`` not divisible by the batch size, ``gt_size`` above the 400-pixel crop, or a
            malformed degradation key (one line naming the key).
    """

    def __init__(self, opt: Mapping[str, Any], device: torch.device, *, sharpen_target: bool, keep_usm: bool) -> None:
        from restore.data.degradations import DiffJPEG, USMSharp

        self.settings = DegradationSettings.from_options({**opt, "scale": opt.get("scale") or 4})
        train_ds = (opt.get("datasets") or {}).get("train") or {}
        batch = int(train_ds.get("batch_size_per_gpu") or 1)
        self.pool = PairPool(self.settings.queue_size, batch)
        self.device = device
        self.jpeger = DiffJPEG(differentiable=False).to(device)
        self.usm = USMSharp().to(device)
        self.sharpen_target, self.keep_usm = sharpen_target, keep_usm

    @torch.no_grad()
    def __call__(self, batch: Mapping[str, Any]) -> FedBatch:
        if "kernel1" not in batch:
            raise ValueError(
                "datasets.train.type: high_order_degradation needs RealESRGANDataset batches (GT and kernels); "
                "set high_order_degradation: false to train on LQ/GT pairs"
            )
        gt = batch["gt"].to(self.device, non_blocking=True)
        kernels = [batch[k].to(self.device, non_blocking=True) for k in ("kernel1", "kernel2", "sinc_kernel")]
        source = self.usm(gt) if self.sharpen_target or self.keep_usm else gt
        if self.sharpen_target:
            gt = source
        lq = degrade(source, *kernels, self.settings, self.jpeger)
        (gt,), lq = paired_random_crop([gt], lq, self.settings.gt_size, self.settings.scale)
        lq, gt = self.pool(lq.contiguous(), gt.contiguous())
        return FedBatch(lq.contiguous(), gt, self.usm(gt) if self.keep_usm else None)


class RealESRNetModel(RestorationModel):
    """The MSE stage: :class:`RestorationModel` fed by :class:`DegradationFeed` (module docstring)."""

    def __init__(
        self,
        opt: Mapping[str, Any],
        device: torch.device,
        dist: DistInfo | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(opt, device, dist, logger)
        self.feed = (
            DegradationFeed(opt, device, sharpen_target=bool(opt.get("gt_usm")), keep_usm=self.trains_discriminator)
            if uses_degradation(opt)
            else None
        )

    def _inputs(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.feed is None:
            return super()._inputs(batch)
        fed = self.feed(batch)
        lq = fed.lq
        if self.channels_last:
            lq = lq.contiguous(memory_format=torch.channels_last)
        return lq, fed.gt

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.feed is not None:
            state["pool"] = self.feed.pool.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.feed is not None and "pool" in state:
            self.feed.pool.load_state_dict(state["pool"], self.device)


def _mse_model(opt: Mapping[str, Any], device: torch.device, dist: DistInfo | None = None, logger=None):
    return RealESRNetModel(opt, device, dist, logger)


for _name in MSE_MODEL_TYPES:
    MODEL_REGISTRY.register(_mse_model, name=_name)
