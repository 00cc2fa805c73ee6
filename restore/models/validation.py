"""Validation during training: restore each image with the inference engine, score it with ``val.metrics``.

Images are compared as BasicSR does: the network output and the GT are clamped to [0, 1], scaled to 0..255,
rounded to uint8 and converted to BGR before ``METRIC_REGISTRY[type](img=..., img2=..., **options)`` is called
(``img2`` only for full-reference metrics).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from restore.engine import infer
from restore.metrics import metric_direction  # importing restore.metrics registers the metrics
from restore.utils.option_blocks import METRIC_OPTION_KEYS
from restore.utils.registry import METRIC_REGISTRY

__all__ = ["BestMetrics", "to_uint8_bgr", "validate"]


def to_uint8_bgr(img: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) RGB float tensor -> (H, W, C) uint8 BGR (gray stays one channel), clamped to
    [0, 1] and rounded half to even (BasicSR's ``tensor2img``)."""
    img = img.detach().float().cpu()
    if img.dim() == 4:
        if img.shape[0] != 1:
            raise ValueError(f"to_uint8_bgr: expected one image, got a batch of {img.shape[0]}")
        img = img[0]
    hwc = (img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(hwc[..., ::-1] if hwc.shape[2] == 3 else hwc)


def _metric_call(name: str, spec: Mapping[str, Any], output: np.ndarray, gt: np.ndarray) -> float:
    """One metric value; the reference image is passed only to full-reference metrics (NIQE takes none)."""
    kwargs = {k: v for k, v in spec.items() if k not in METRIC_OPTION_KEYS}
    fn = METRIC_REGISTRY.get(spec["type"])
    if "img2" in inspect.signature(fn).parameters:
        kwargs["img2"] = gt
    return float(fn(img=output, **kwargs))


class BestMetrics:
    """Best value and iteration of each metric per validation set (``better: higher|lower``)."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {k: dict(v) for k, v in (state or {}).items()}

    def update(self, dataset: str, values: Mapping[str, float], specs: Mapping[str, Any], iteration: int) -> None:
        table = self.records.setdefault(dataset, {})
        for name, value in values.items():
            higher = metric_direction(specs[name].get("type", ""), specs[name].get("better")) == "higher"
            best = table.get(name)
            if best is None or (value >= best["val"] if higher else value <= best["val"]):
                table[name] = {"val": float(value), "iter": int(iteration)}

    def get(self, dataset: str, name: str) -> dict[str, Any] | None:
        return self.records.get(dataset, {}).get(name)

    def state_dict(self) -> dict[str, Any]:
        return {k: {m: dict(r) for m, r in v.items()} for k, v in self.records.items()}


def validate(
    net: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]] | None,
    *,
    device: torch.device,
    infer_kwargs: Mapping[str, Any] | None = None,
    save_dir: str | Path | None = None,
    save_suffix: str = "",
) -> dict[str, float]:
    """Average every metric over the images of ``loader``.

    Args:
        net: the network to evaluate (the EMA copy when there is one); the engine puts it in eval mode.
        loader: items ``{'lq', 'lq_path'[, 'gt']}`` with batch size 1.
        metrics: ``val.metrics`` (name -> ``{'type', ...kwargs, 'better'}``); images without GT are skipped.
        device: where the network runs.
        infer_kwargs: extra :func:`restore.engine.infer` arguments (``tile``, ``precision``...).
        save_dir: if given, each output is written to ``save_dir/<image stem>/<stem>_<suffix>.png``.

    Returns:
        ``{metric name: mean value}`` (empty without metrics).
    """
    from restore.data.image_io import write_image

    metrics = metrics or {}
    sums = dict.fromkeys(metrics, 0.0)
    count = 0
    for item in loader:
        output = infer(net, item["lq"].to(device), device=device, **(infer_kwargs or {}))
        if save_dir is not None:
            stem = Path(item["lq_path"][0]).stem
            rgb = output[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            write_image(Path(save_dir) / stem / f"{stem}_{save_suffix}.png", rgb)
        if "gt" not in item or not metrics:
            continue
        out_img, gt_img = to_uint8_bgr(output), to_uint8_bgr(item["gt"])
        if out_img.shape != gt_img.shape:
            raise ValueError(
                f"validation: output {out_img.shape} and GT {gt_img.shape} differ for {item['lq_path'][0]}"
            )
        for name, spec in metrics.items():
            sums[name] += _metric_call(name, spec, out_img, gt_img)
        count += 1
    return {name: (total / count if count else math.nan) for name, total in sums.items()}
