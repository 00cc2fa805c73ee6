"""DRCT family: the ``DRCT`` network (registered on import) and ``detect`` for its checkpoints."""

from restore.archs.drct.arch import DRCT, PRESETS
from restore.archs.drct.detect import detect

__all__ = ["DRCT", "PRESETS", "detect"]
