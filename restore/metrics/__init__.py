"""Image quality metrics, registered in ``METRIC_REGISTRY`` under their function names.

Full-reference: ``calculate_psnr``, ``calculate_ssim`` (uint8 BGR arrays), ``calculate_psnr_pt``,
``calculate_ssim_pt`` (batched RGB tensors), ``calculate_lpips`` (optional ``lpips`` package).
No-reference: ``calculate_niqe``.
"""

from restore.metrics.niqe import calculate_niqe
from restore.metrics.perceptual import calculate_lpips
from restore.metrics.psnr_ssim import calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt
from restore.utils.registry import METRIC_REGISTRY

#: Metrics for which a lower value is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"calculate_niqe", "calculate_lpips"})


def metric_direction(metric_type: str, better: str | None = None) -> str:
    """``"higher"`` or ``"lower"``: the option's ``better`` when given, else the metric's own direction."""
    return better or ("lower" if metric_type in LOWER_IS_BETTER else "higher")


__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_REGISTRY",
    "calculate_lpips",
    "calculate_niqe",
    "calculate_psnr",
    "calculate_psnr_pt",
    "calculate_ssim",
    "calculate_ssim_pt",
    "metric_direction",
]
