"""Inference engine: official test-time padding, tiled inference with cross-faded tiles, memory-safe batching.

The engine knows no architecture: a network states what it needs through attributes (``scale``,
``pad_multiple``, ``clamp_output``, ``supports_fp16``; see ``restore.engine.forward``).

Example:
    >>> from restore.engine import infer
    >>> sr = infer(net, lq)                                  # exact official path, lq (B, 3, H, W) in [0, 1]
    >>> sr = infer(net, lq, tile=256, tile_overlap=32, precision="bf16")   # large images
"""

from restore.engine.forward import PRECISIONS, NetworkSpec, network_spec
from restore.engine.inference import BLEND_MODES, VARIANTS, infer
from restore.engine.padding import PADDING_MODES, pad_amount, pad_bottom_right

__all__ = [
    "BLEND_MODES",
    "PADDING_MODES",
    "PRECISIONS",
    "VARIANTS",
    "NetworkSpec",
    "infer",
    "network_spec",
    "pad_amount",
    "pad_bottom_right",
]
