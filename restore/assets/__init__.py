"""Files shipped with the package: the default super-resolution model and a sample low-resolution image.

``restore upscale`` and ``restore infer`` use :data:`DEFAULT_WEIGHTS` (built from :data:`DEFAULT_OPTIONS`) when
no ``--weights`` is given. The model is a small DLGSANet (x4) trained on scikit-image's sample photos with
``python scripts/train_demo_model.py`` (options/train/demo_DLGSANet_SRx4.yml); it is a demonstration, well
above bicubic but far below the published models.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS_DIR", "DEFAULT_OPTIONS", "DEFAULT_WEIGHTS", "SAMPLES_DIR", "SAMPLE_IMAGE", "SAMPLE_ORIGIN"]

ASSETS_DIR = Path(__file__).resolve().parent
#: Bundled x4 weights (one state dict, the EMA weights) and the option file holding their ``network_g``.
DEFAULT_WEIGHTS = ASSETS_DIR / "weights" / "DLGSANet_demo_SRx4.safetensors"
DEFAULT_OPTIONS = ASSETS_DIR / "weights" / "DLGSANet_demo_SRx4.yml"
SAMPLES_DIR = ASSETS_DIR / "samples"
SAMPLE_IMAGE = SAMPLES_DIR / "astronaut_crop_LRx4.png"
#: How the sample was made: rows/cols ``[top:bottom, left:right]`` of scikit-image's ``astronaut.png`` (never
#: trained on), downscaled by ``1 / scale`` with :func:`restore.data.imresize.imresize` and rounded to 8 bits.
SAMPLE_ORIGIN = {"photo": "astronaut.png", "box": (0, 448, 64, 512), "scale": 4}
