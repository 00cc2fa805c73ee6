"""Infer DRCT's ``network_g`` from a state dict (keys and shapes only).

Recognised by per-block ``layers.<i>.swin<k>.attn.relative_position_index`` buffers and ``adjust<k>`` convs.
Determined from shapes: ``in_chans``, ``embed_dim``, ``gc``, number of groups (``depths`` is returned as
``[6] * groups``; only its length matters), ``num_heads``, ``window_size``, ``img_size`` (from the stored
shift mask: ``nW = (img_size / window_size)**2``; without one, ``img_size == window_size``), ``mlp_ratio``,
``upscale``, ``upsampler``, ``resi_connection``, ``ape``, ``patch_norm``, ``qkv_bias``. The arguments DRCT
ignores (``compress_ratio``, ``squeeze_factor``, ``conv_scale``, ``overlap_ratio``) get the official values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from restore.archs.layers.detect_utils import (
    ape_img_size,
    count_children,
    detect_reconstruction,
    hidden_ratio,
    missing_key,
    square_side,
)

_REQUIRED = ("conv_first.weight", "layers.0.swin1.attn.relative_position_index", "layers.0.adjust5.weight")
_OFFICIAL_DEPTH = 6
_SHIFTED_BLOCKS = (2, 4)  # swin2 and swin4 use shifted windows


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """Return the full ``network_g`` (with ``type: DRCT``) for ``state_dict``, or ``None`` if it is not DRCT."""
    if any(key not in state_dict for key in _REQUIRED):
        return None
    sd = state_dict
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    gc = sd["layers.0.adjust1.weight"].shape[0]
    window_size = square_side(sd["layers.0.swin1.attn.relative_position_index"].shape[0])
    if window_size is None:
        raise ValueError("DRCT detect: relative_position_index is not (ws*ws, ws*ws)")
    num_layers = count_children(sd, "layers.")
    num_heads = [sd[f"layers.{i}.swin1.attn.relative_position_bias_table"].shape[1] for i in range(num_layers)]

    img_size = window_size  # no stored shift mask: the training size fits in one window
    masks = [f"layers.{i}.swin{k}.attn_mask" for i in range(num_layers) for k in _SHIFTED_BLOCKS]
    stored = [key for key in masks if key in sd]
    if stored:
        missing_key(sd, masks, "DRCT", f"every shifted block stores its shift mask; {len(stored)} of {len(masks)} do")
        windows = square_side(sd[stored[0]].shape[0])
        if windows is None:
            raise ValueError("DRCT detect: attn_mask window count is not a square; img_size is not square")
        img_size = windows * window_size
    ape_side = ape_img_size(sd, "DRCT")
    ape = ape_side is not None
    if ape:
        img_size = ape_side

    upsampler, upscale = detect_reconstruction(sd, "DRCT")
    return {
        "type": "DRCT",
        "upscale": upscale if upscale is not None else 2,
        "in_chans": int(in_chans),
        "img_size": img_size,
        "window_size": window_size,
        "compress_ratio": 3,
        "squeeze_factor": 30,
        "conv_scale": 0.01,
        "overlap_ratio": 0.5,
        "img_range": 1.0,
        "depths": [_OFFICIAL_DEPTH] * num_layers,
        "embed_dim": int(embed_dim),
        "num_heads": [int(h) for h in num_heads],
        "mlp_ratio": hidden_ratio(sd["layers.0.swin1.mlp.fc1.weight"].shape[0], embed_dim),
        "upsampler": upsampler,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
        "ape": ape,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "qkv_bias": "layers.0.swin1.attn.qkv.bias" in sd,
        "gc": int(gc),
    }
