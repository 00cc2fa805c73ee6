"""Training: the restoration model (losses, EMA, optimizer, schedules), validation and the training loop.

``build_model(opt, device)`` resolves ``opt['model_type']`` in ``MODEL_REGISTRY``: BasicSR/HAT/DRCT/DRSformer
names (``SRModel``, ``HATModel``, ``DRCTModel``, ``ImageCleanModel``, ...) are aliases of
:class:`RestorationModel`; the Real-ESRGAN MSE-stage names (``RealHATMSEModel``, ...) build
:class:`RealESRNetModel` and the GAN-stage names (``RealHATGANModel``, ...) :class:`RealESRGANModel`.
The command line lives in :mod:`restore.commands.train`; the loop in :mod:`restore.models.runner`.
"""

from restore.models.adversarial import RealESRGANModel
from restore.models.real_esrgan import RealESRNetModel
from restore.models.restoration import OFFICIAL_MODEL_TYPES, RestorationModel, TrainSettings, build_model
from restore.utils.registry import MODEL_REGISTRY

__all__ = [
    "MODEL_REGISTRY",
    "OFFICIAL_MODEL_TYPES",
    "RealESRGANModel",
    "RealESRNetModel",
    "RestorationModel",
    "TrainSettings",
    "build_model",
]
