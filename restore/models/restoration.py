"""The one training model: a generator trained with pixel/perceptual/frequency losses, optional EMA.

Official ``model_type`` names (``SRModel``, ``HATModel``, ``DRCTModel``, ``ImageCleanModel``, ...) are aliases
of :class:`RestorationModel` in ``MODEL_REGISTRY``; the Real-ESRGAN names (MSE and GAN stages) build its
subclasses in :mod:`restore.models.real_esrgan` and :mod:`restore.models.adversarial`.

A training iteration (:meth:`RestorationModel.train_step`) takes ``accumulate_grad_batches`` micro-batches:
forward (under bf16/fp16 autocast when ``train.amp`` asks), loss in float32, abort on a non-finite loss,
backward of ``loss / k`` (DDP gradient sync only on the last micro-batch), optional gradient-norm clipping,
one optimizer step, then the EMA update ``ema = decay * ema + (1 - decay) * net``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore.archs import build_network
from restore.checkpoint import CheckpointError, LoadReport, load_network, load_state_dict, save_checkpoint
from restore.engine.forward import network_spec, use_channels_last
from restore.models.batch_augment import build_mixup
from restore.models.criteria import Criteria
from restore.models.dist import DistInfo, wrap_ddp
from restore.models.ema import make_ema, update_ema
from restore.models.lr_schedule import LRController, build_schedule
from restore.models.optim import build_optimizer
from restore.utils.registry import MODEL_REGISTRY

__all__ = ["OFFICIAL_MODEL_TYPES", "RestorationModel", "TrainSettings", "build_model"]

_AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` switches that shape an iteration (see the module docstring)."""

    total_iter: int
    ema_decay: float = 0.0
    use_grad_clip: bool = False
    grad_clip_norm: float = 0.01
    accumulate_grad_batches: int = 1
    amp: str = "fp32"
    channels_last: bool | None = None  # None: the network's cpu_memory_format on the CPU, NCHW elsewhere
    compile: bool = False

    @classmethod
    def from_options(cls, train_opt: Mapping[str, Any]) -> TrainSettings:
        total = train_opt.get("total_iter")
        if not isinstance(total, int) or total < 1:
            raise ValueError(f"train.total_iter: expected a positive int, got {total!r}")
        settings = cls(
            total_iter=total,
            ema_decay=float(train_opt.get("ema_decay") or 0.0),
            use_grad_clip=bool(train_opt.get("use_grad_clip")),
            grad_clip_norm=float(train_opt.get("grad_clip_norm") or 0.01),
            accumulate_grad_batches=int(train_opt.get("accumulate_grad_batches") or 1),
            amp=str(train_opt.get("amp") or "fp32"),
            channels_last=None if train_opt.get("channels_last") is None else bool(train_opt["channels_last"]),
            compile=bool(train_opt.get("compile")),
        )
        if not 0.0 <= settings.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay: expected 0 <= decay < 1, got {settings.ema_decay}")
        if settings.accumulate_grad_batches < 1:
            raise ValueError(f"train.accumulate_grad_batches: expected >= 1, got {settings.accumulate_grad_batches}")
        if settings.amp not in _AMP_DTYPES:
            raise ValueError(f"train.amp: expected one of {', '.join(_AMP_DTYPES)}, got {settings.amp!r}")
        return settings


def _check_supported(opt: Mapping[str, Any]) -> None:
    train = opt.get("train") or {}
    for key, what in (("network_d", "network_d"), ("gan_opt", "train.gan_opt")):
        if (opt if key == "network_d" else train).get(key):
            raise NotImplementedError(
                f"{what}: model_type {opt.get('model_type') or 'SRModel'} trains the generator alone; adversarial "
                "training uses model_type RealESRGANModel (or RealHATGANModel, RealDRCTGANModel)"
            )


class RestorationModel:
    """Network, EMA copy, losses, optimizer and learning-rate control for one training process.

    Args:
        opt: validated options (``network_g``, ``train``, ``path``).
        device: where to train.
        dist: distributed setup (the network is wrapped in DDP when ``dist.enabled``).
        logger: receives the fine-tuning report and notes.
    """

    #: Subclasses that train a discriminator accept ``network_d`` and ``train.gan_opt``.
    trains_discriminator = False

    def __init__(
        self,
        opt: Mapping[str, Any],
        device: torch.device,
        dist: DistInfo | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not self.trains_discriminator:
            _check_supported(opt)
        self.opt, self.device, self.dist = opt, device, dist or DistInfo()
        self.logger = logger or logging.getLogger("restore.train")
        train_opt = opt.get("train") or {}
        self.settings = TrainSettings.from_options(train_opt)
        self.amp_dtype = _AMP_DTYPES[self.settings.amp]

        self.net_g = build_network(opt["network_g"]).to(device)
        self.load_report = self._load_pretrained(opt.get("path") or {})
        if self.settings.amp == "fp16" and getattr(self.net_g, "supports_fp16", True) is False:
            self.logger.warning(f"{opt['network_g']['type']} is marked supports_fp16=False; prefer train.amp: bf16")
        self.channels_last = use_channels_last(network_spec(self.net_g), device, self.settings.channels_last)
        if self.channels_last:
            self.net_g = self.net_g.to(memory_format=torch.channels_last)
        self.ddp = wrap_ddp(self.net_g, device, self.dist)
        self.forward_net: nn.Module = self.net_g if self.ddp is None else self.ddp
        self.net_g_ema = make_ema(self.net_g) if self.settings.ema_decay > 0 else None  # after DDP's broadcast
        if self.settings.compile:
            self.forward_net = torch.compile(self.forward_net)

        self.criteria = Criteria(train_opt).to(device)
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        if not params:
            raise ValueError("network_g: no trainable parameters")
        self.optimizer = build_optimizer(params, train_opt.get("optim_g") or {})
        if not train_opt.get("scheduler"):
            raise KeyError("train.scheduler: missing (e.g. {type: MultiStepLR, milestones: [...], gamma: 0.5})")
        schedule = build_schedule(train_opt["scheduler"], self.settings.total_iter)
        self.lr = LRController(self.optimizer, schedule, train_opt.get("warmup_iter", -1))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.settings.amp == "fp16")
        self.mixup = build_mixup(train_opt)

    # -------------------------------------------------------------------------------------------- weights

    def _load_pretrained(self, path_opt: Mapping[str, Any]) -> LoadReport | None:
        source = path_opt.get("pretrain_network_g")
        if not source:
            return None
        strict = path_opt.get("strict_load_g", True) is not False
        param_key = path_opt.get("param_key_g") or "params"
        try:
            state = load_state_dict(source, param_key)
        except CheckpointError as err:  # a missing or unreadable file: strict_load_g would not help
            raise CheckpointError(f"path.pretrain_network_g: {err}") from None
        try:
            report = load_network(self.net_g, state, strict=strict, param_key=None)
        except CheckpointError as err:
            message = str(err).replace("state dict:", f"{source}:", 1)
            raise CheckpointError(f"{message}; to fine-tune from it anyway set path.strict_load_g: false") from None
        if not report.loaded:
            raise CheckpointError(
                f"path.pretrain_network_g: no tensor of {source} [{param_key}] fits {type(self.net_g).__name__} "
                f"({report.summary()}); training would start from random weights; check network_g and "
                "path.param_key_g, or remove pretrain_network_g to train from scratch"
            )
        self.logger.info(f"loaded {len(report.loaded)} tensors from {source} [{param_key}], strict={strict}")
        if not report.ok:
            self.logger.warning(f"fine-tuning from {source}: not every key was loaded\n{report.table()}")
        return report

    @property
    def eval_net(self) -> nn.Module:
        """The network to validate and publish: the EMA copy when there is one."""
        return self.net_g_ema if self.net_g_ema is not None else self.net_g

    def save_network(self, path: str | Path) -> Path:
        """Write ``{'params': net_g, 'params_ema': ema}`` (BasicSR layout) atomically."""
        return save_checkpoint(path, self.net_g, self.net_g_ema)

    def save_networks(self, models_dir: str | Path, iteration: int) -> list[Path]:
        """Write this iteration's weight files into ``models_dir`` (``net_g_<iter>.pth``); returns their paths."""
        return [self.save_network(Path(models_dir) / f"net_g_{iteration}.pth")]

    def load_network_state(self, network: Mapping[str, Any]) -> None:
        """Restore weights saved by :meth:`save_network` (strict; used when resuming)."""
        load_network(self.net_g, network["params"], strict=True, param_key=None)
        if self.net_g_ema is not None:
            load_network(self.net_g_ema, network.get("params_ema", network["params"]), strict=True, param_key=None)

    # -------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, learning-rate and grad-scaler state (weights are saved separately)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "lr": self.lr.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr.load_state_dict(state["lr"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    # -------------------------------------------------------------------------------------------- training

    def _inputs(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        if self.mixup is not None:
            gt, lq = self.mixup(gt, lq)
        if self.channels_last:
            lq = lq.contiguous(memory_format=torch.channels_last)
        return lq, gt

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batches: Sequence[Mapping[str, Any]], iteration: int) -> dict[str, float]:
        """One optimizer step over ``batches`` (the micro-batches of gradient accumulation).

        Returns:
            The loss terms (and their total ``l_total`` when there are several), averaged over the micro-batches.

        Raises:
            FloatingPointError: a loss is NaN or infinite (names the iteration, the terms and the images).
        """
        self.forward_net.train()
        self.optimizer.zero_grad(set_to_none=True)
        count = len(batches)
        logs: dict[str, float] = {}
        for i, batch in enumerate(batches):
            lq, gt = self._inputs(batch)
            sync = self.ddp is None or i == count - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with self._autocast():
                    output = self.forward_net(lq)
                total, terms = self.criteria(output.float(), gt)
                numbers = torch.stack([*(v.detach() for v in terms.values()), total.detach()]).tolist()
                values = dict(zip([*terms, "l_total"], numbers))
                if len(terms) == 1:
                    values.pop("l_total")
                if not all(math.isfinite(v) for v in values.values()):
                    shown = ", ".join(f"{k}={v}" for k, v in values.items())
                    paths = list(batch.get("lq_path", []))[:4]
                    raise FloatingPointError(
                        f"non-finite loss at iteration {iteration} ({shown}); training stopped. Lower the learning "
                        f"rate, enable train.use_grad_clip or check the inputs {paths}"
                    )
                self.scaler.scale(total / count).backward()
            for name, value in values.items():
                logs[name] = logs.get(name, 0.0) + value / count
        if self.settings.use_grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.settings.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.net_g_ema is not None:
            update_ema(self.net_g_ema, self.net_g, self.settings.ema_decay)
        return logs


@MODEL_REGISTRY.register(name="RestorationModel")
def _restoration_model(opt: Mapping[str, Any], device: torch.device, dist: DistInfo | None = None, logger=None):
    return RestorationModel(opt, device, dist, logger)


#: Official ``model_type`` names trained by :class:`RestorationModel`.
OFFICIAL_MODEL_TYPES = ("SRModel", "HATModel", "DRCTModel", "ImageCleanModel", "SwinIRModel")
for _name in OFFICIAL_MODEL_TYPES:
    MODEL_REGISTRY.register(_restoration_model, name=_name)


def _gan_model(opt: Mapping[str, Any], device: torch.device, dist=None, logger=None):
    raise NotImplementedError(
        f"model_type {opt.get('model_type')}: not implemented; adversarial training uses model_type "
        "RealESRGANModel (or RealHATGANModel, RealDRCTGANModel), which also trains on paired data with "
        "high_order_degradation: false"
    )


for _name in ("SRGANModel", "ESRGANModel"):
    MODEL_REGISTRY.register(_gan_model, name=_name)


def build_model(
    opt: Mapping[str, Any], device: torch.device, dist: DistInfo | None = None, logger: logging.Logger | None = None
) -> RestorationModel:
    """``MODEL_REGISTRY[opt['model_type']](opt, device, dist, logger)`` (default ``SRModel``)."""
    return MODEL_REGISTRY.get(opt.get("model_type") or "SRModel")(opt, device, dist, logger)
