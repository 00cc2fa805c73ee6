"""DLGSANet (lightweight super-resolution): network (registered as ``DLGSANet``) and checkpoint detection."""

from restore.archs.dlgsanet.arch import PRESETS, TLC_KERNEL_BY_SCALE, DLGSANet
from restore.archs.dlgsanet.detect import detect

__all__ = ["PRESETS", "TLC_KERNEL_BY_SCALE", "DLGSANet", "detect"]
