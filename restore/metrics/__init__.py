"""Image quality metrics, registered in ``METRIC_REGISTRY`` under their function names."""

from restore.metrics.psnr_ssim import calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt

__all__ = ["calculate_psnr", "calculate_psnr_pt", "calculate_ssim", "calculate_ssim_pt"]
