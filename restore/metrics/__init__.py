"""Image quality metrics, registered in ``METRIC_REGISTRY`` under their function names.

Full-reference: ``calculate_psnr``, ``calculate_ssim`` (uint8 BGR arrays), ``calculate_psnr_pt``,
``calculate_ssim_pt`` (batched RGB tensors), ``calculate_lpips`` (optional ``lpips`` package).
No-reference: ``calculate_niqe``.
"""

from restore.metrics.niqe import calculate_niqe
from restore.metrics.perceptual import calculate_lpips
from restore.metrics.psnr_ssim import calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt
from restore.utils.registry import METRIC_REGISTRY

__all__ = [
    "METRIC_REGISTRY",
    "calculate_lpips",
    "calculate_niqe",
    "calculate_psnr",
    "calculate_psnr_pt",
    "calculate_ssim",
    "calculate_ssim_pt",
]
