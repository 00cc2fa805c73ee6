"""The GAN stage: generator trained with pixel, perceptual and adversarial losses against a discriminator.

``model_type`` ``RealESRGANModel`` (BasicSR), ``RealHATGANModel`` (HAT) and ``RealDRCTGANModel`` (DRCT) build
:class:`RealESRGANModel`. Its feed step is :class:`restore.models.real_esrgan.DegradationFeed` (or, with
``high_order_degradation: false``, paired ``lq``/``gt`` batches whose ``gt_usm`` is the sharpened GT).

One iteration (:meth:`RealESRGANModel.train_step`, ``iteration`` counts from 1):

1. ``output = net_g(lq)``;
2. generator step when ``iteration % net_d_iters == 0 and iteration > net_d_init_iters``, with the
   discriminator frozen: ``l_g_pix`` (``pixel_opt``) and ``l_g_percep``/``l_g_style`` (``perceptual_opt``)
   against ``gt_usm`` or ``gt`` (``l1_gt_usm``, ``percep_gt_usm``), ``l_g_gan = gan_opt(net_d(output), real)``;
3. discriminator step: ``l_d_real = gan(net_d(target), real)`` and ``l_d_fake = gan(net_d(output), fake)``
   (target ``gt_usm`` if ``gan_gt_usm`` else ``gt``), both backpropagated, one ``optim_d`` step;
4. EMA of the generator.

The discriminator stays in train mode (each forward runs one spectral-norm power iteration, as officially).
``network_d``, ``optim_d``, ``path.pretrain_network_d``/``param_key_d``/``strict_load_d`` configure it; it gets
its own learning-rate schedule from ``train.scheduler``; ``train.amp: bf16`` autocasts its forwards, and under
torchrun it is wrapped in DistributedDataParallel. Checkpoints add ``models/net_d_<iter>.pth``; the training
state holds D's weights, ``optim_d``, its schedule and the pair pool.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore.archs import build_network
from restore.checkpoint import CheckpointError, load_network, save_checkpoint
from restore.losses import build_loss
from restore.models.dist import DistInfo, wrap_ddp
from restore.models.ema import update_ema
from restore.models.lr_schedule import LRController, build_schedule
from restore.models.optim import build_optimizer
from restore.models.real_esrgan import FedBatch, RealESRNetModel
from restore.utils.registry import MODEL_REGISTRY

__all__ = ["GAN_MODEL_TYPES", "RealESRGANModel"]

#: Official ``model_type`` names of the GAN stage.
GAN_MODEL_TYPES = ("RealESRGANModel", "RealHATGANModel", "RealDRCTGANModel")


def _check_finite(values: Mapping[str, float], iteration: int, batch: Mapping[str, Any]) -> None:
    if not all(math.isfinite(v) for v in values.values()):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        paths = list(batch.get("gt_path", batch.get("lq_path", [])))[:4]
        raise FloatingPointError(
            f"non-finite loss at iteration {iteration} ({shown}); training stopped. Lower the learning "
            f"rate, enable train.use_grad_clip or check the inputs {paths}"
        )


class RealESRGANModel(RealESRNetModel):
    """Generator + discriminator training (module docstring)."""

    trains_discriminator = True

    def __init__(
        self,
        opt: Mapping[str, Any],
        device: torch.device,
        dist: DistInfo | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        train_opt = opt.get("train") or {}
        if not opt.get("network_d"):
            raise KeyError(f"network_d: missing; model_type {opt.get('model_type')} trains a discriminator")
        for key in ("gan_opt", "optim_d"):
            if not train_opt.get(key):
                raise KeyError(f"train.{key}: missing; model_type {opt.get('model_type')} needs it")
        if int(train_opt.get("accumulate_grad_batches") or 1) != 1:
            raise ValueError("train.accumulate_grad_batches: GAN models take one batch per step; set it to 1")
        if train_opt.get("amp") == "fp16":
            raise ValueError("train.amp: fp16 is not supported for GAN models; use bf16 or fp32")
        if (train_opt.get("mixing_augs") or {}).get("mixup"):
            raise ValueError("train.mixing_augs.mixup: not supported for GAN models")
        super().__init__(opt, device, dist, logger)
        if self.feed is None:
            from restore.data.degradations import USMSharp

            self.paired_usm = USMSharp().to(device)
        self.l1_gt_usm = opt.get("l1_gt_usm") is not False
        self.percep_gt_usm = opt.get("percep_gt_usm") is not False
        self.gan_gt_usm = bool(opt.get("gan_gt_usm"))
        self.net_d_iters = int(train_opt.get("net_d_iters") or 1)
        self.net_d_init_iters = int(train_opt.get("net_d_init_iters") or 0)

        self.net_d = build_network(opt["network_d"]).to(device)
        self._load_pretrained_d(opt.get("path") or {})
        self.net_d.train()
        self.ddp_d = wrap_ddp(self.net_d, device, self.dist)
        self.forward_d: nn.Module = self.net_d if self.ddp_d is None else self.ddp_d
        self.gan_loss = build_loss(train_opt["gan_opt"], where="train.gan_opt").to(device)
        self.optimizer_d = build_optimizer(self.net_d.parameters(), train_opt["optim_d"], where="train.optim_d")
        schedule = build_schedule(train_opt["scheduler"], self.settings.total_iter)
        self.lr_d = LRController(self.optimizer_d, schedule, train_opt.get("warmup_iter", -1))

    def _load_pretrained_d(self, path_opt: Mapping[str, Any]) -> None:
        source = path_opt.get("pretrain_network_d")
        if not source:
            return
        strict = path_opt.get("strict_load_d", True) is not False
        param_key = path_opt.get("param_key_d") or "params"
        try:
            report = load_network(self.net_d, source, strict=strict, param_key=param_key)
        except CheckpointError as err:
            if not strict:
                raise
            raise CheckpointError(f"{err}; to start from it anyway set path.strict_load_d: false") from None
        self.logger.info(f"loaded {len(report.loaded)} discriminator tensors from {source} [{param_key}]")
        if not report.ok:
            self.logger.warning(f"discriminator from {source}: not every key was loaded\n{report.table()}")

    # -------------------------------------------------------------------------------------------- weights / state

    def save_networks(self, models_dir: str | Path, iteration: int) -> list[Path]:
        """``net_g_<iter>.pth`` and ``net_d_<iter>.pth`` (``{'params': net_d}``)."""
        paths = super().save_networks(models_dir, iteration)
        paths.append(save_checkpoint(Path(models_dir) / f"net_d_{iteration}.pth", self.net_d))
        return paths

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["net_d"] = {k: v.detach().cpu() for k, v in self.net_d.state_dict().items()}
        state["optimizer_d"] = self.optimizer_d.state_dict()
        state["lr_d"] = self.lr_d.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "net_d" not in state:
            raise CheckpointError("training state: no discriminator (net_d); it was not written by a GAN run")
        load_network(self.net_d, state["net_d"], strict=True, param_key=None)
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.lr_d.load_state_dict(state["lr_d"])

    # -------------------------------------------------------------------------------------------- training

    def _fed(self, batch: Mapping[str, Any]) -> FedBatch:
        if self.feed is not None:
            fed = self.feed(batch)
        else:
            gt = batch["gt"].to(self.device, non_blocking=True)
            with torch.no_grad():
                fed = FedBatch(batch["lq"].to(self.device, non_blocking=True), gt, self.paired_usm(gt))
        if self.channels_last:
            fed.lq = fed.lq.contiguous(memory_format=torch.channels_last)
        return fed

    def _d_forward(self, img: torch.Tensor, sync: bool = True) -> torch.Tensor:
        context = contextlib.nullcontext() if sync or self.ddp_d is None else self.ddp_d.no_sync()
        with context, self._autocast():
            return self.forward_d(img).float()

    def train_step(self, batches: Sequence[Mapping[str, Any]], iteration: int) -> dict[str, float]:
        """One generator step (when due) and one discriminator step; returns the logged terms (module docstring)."""
        if len(batches) != 1:
            raise ValueError("train.accumulate_grad_batches: GAN models take one batch per step")
        batch = batches[0]
        fed = self._fed(batch)
        assert fed.gt_usm is not None
        self.lr_d.apply(iteration)
        self.forward_net.train()
        self.net_d.train()
        logs: dict[str, float] = {}

        # generator
        g_step = iteration % self.net_d_iters == 0 and iteration > self.net_d_init_iters
        self.net_d.requires_grad_(False)
        self.optimizer.zero_grad(set_to_none=True)
        with contextlib.nullcontext() if g_step else torch.no_grad(), self._autocast():
            output = self.forward_net(fed.lq)
        if g_step:
            terms = self._generator_terms(output.float(), fed)
            total = torch.stack(list(terms.values())).sum()
            values = dict(zip(terms, torch.stack([v.detach() for v in terms.values()]).tolist()))
            _check_finite(values, iteration, batch)
            total.backward()
            if self.settings.use_grad_clip:
                torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.settings.grad_clip_norm)
            self.optimizer.step()
            logs.update(values)

        # discriminator
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        real_pred = self._d_forward(fed.gt_usm if self.gan_gt_usm else fed.gt)
        l_d_real = self.gan_loss(real_pred, True, is_disc=True)
        l_d_real.backward()
        fake_pred = self._d_forward(output.detach().clone())
        l_d_fake = self.gan_loss(fake_pred, False, is_disc=True)
        l_d_fake.backward()
        numbers = torch.stack(
            [l_d_real.detach(), real_pred.detach().mean(), l_d_fake.detach(), fake_pred.detach().mean()]
        ).tolist()
        d_values = dict(zip(("l_d_real", "out_d_real", "l_d_fake", "out_d_fake"), numbers))
        _check_finite(d_values, iteration, batch)
        self.optimizer_d.step()
        logs.update(d_values)

        if self.net_g_ema is not None:
            update_ema(self.net_g_ema, self.net_g, self.settings.ema_decay)
        return logs

    def _generator_terms(self, output: torch.Tensor, fed: FedBatch) -> dict[str, torch.Tensor]:
        assert fed.gt_usm is not None
        terms: dict[str, torch.Tensor] = {}
        pixel_target = fed.gt_usm if self.l1_gt_usm else fed.gt
        for name, loss in self.criteria.terms.items():
            if name == "l_percep":
                percep, style = loss(output, fed.gt_usm if self.percep_gt_usm else fed.gt)
                if percep is not None:
                    terms["l_g_percep"] = percep
                if style is not None:
                    terms["l_g_style"] = style
            else:
                terms[f"l_g_{name.removeprefix('l_')}"] = loss(output, pixel_target)
        terms["l_g_gan"] = self.gan_loss(self._d_forward(output, sync=False), True, is_disc=False)
        return terms


def _gan_model(opt: Mapping[str, Any], device: torch.device, dist: DistInfo | None = None, logger=None):
    return RealESRGANModel(opt, device, dist, logger)


for _name in GAN_MODEL_TYPES:
    MODEL_REGISTRY.register(_gan_model, name=_name)
