"""DRSformer (image deraining): network (registered as ``DRSformer``) and checkpoint detection."""

from restore.archs.drsformer.arch import PRESETS, DRSformer
from restore.archs.drsformer.detect import detect

__all__ = ["PRESETS", "DRSformer", "detect"]
