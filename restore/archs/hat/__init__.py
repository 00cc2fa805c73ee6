"""HAT family: the ``HAT`` network (registered on import) and ``detect`` for its checkpoints."""

from restore.archs.hat.arch import HAT, PRESETS
from restore.archs.hat.detect import detect

__all__ = ["HAT", "PRESETS", "detect"]
