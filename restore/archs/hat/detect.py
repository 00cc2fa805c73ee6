"""Infer HAT's ``network_g`` from a state dict (keys and shapes only).

Recognised by the model-level ``relative_position_index_SA`` / ``relative_position_index_OCA`` buffers and
``layers.<i>.residual_group`` groups. Determined from shapes: ``in_chans``, ``embed_dim``, ``depths``,
``num_heads``, ``window_size``, ``overlap_ratio``, ``compress_ratio``, ``squeeze_factor``, ``mlp_ratio``,
``upscale``, ``upsampler``, ``resi_connection``, ``ape``, ``patch_norm``, ``qkv_bias``. Not stored in a
checkpoint (official values returned): ``img_size`` 64 (unless ``ape`` or a shrunken block window reveals it),
``conv_scale`` 0.01, ``img_range`` 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from restore.archs.layers.detect_utils import (
    ape_img_size,
    count_children,
    detect_reconstruction,
    divisor_for,
    hidden_ratio,
    square_side,
)
from restore.ops.window_attention import overlap_window_size

_REQUIRED = (
    "relative_position_index_SA",
    "relative_position_index_OCA",
    "conv_first.weight",
    "layers.0.residual_group.overlap_attn.relative_position_bias_table",
)


def _overlap_ratio(window_size: int, ows: int) -> float:
    for ratio in (0.5, round((ows - window_size) / window_size, 6)):
        if overlap_window_size(window_size, ratio) == ows:
            return ratio
    return (ows - window_size + 0.5) / window_size


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """Return the full ``network_g`` (with ``type: HAT``) for ``state_dict``, or ``None`` if it is not HAT."""
    if any(key not in state_dict for key in _REQUIRED):
        return None
    sd = state_dict
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    window_size = square_side(sd["relative_position_index_SA"].shape[0])
    ows = square_side(sd["relative_position_index_OCA"].shape[1])
    if window_size is None or ows is None:
        raise ValueError("HAT detect: relative_position_index_SA / _OCA shapes are not squares of a window size")

    num_layers = count_children(sd, "layers.")
    depths = [count_children(sd, f"layers.{i}.residual_group.blocks.") for i in range(num_layers)]
    num_heads = [
        sd[f"layers.{i}.residual_group.overlap_attn.relative_position_bias_table"].shape[1] for i in range(num_layers)
    ]
    ocab = "layers.0.residual_group.overlap_attn."
    mlp_ratio = hidden_ratio(sd[ocab + "mlp.fc1.weight"].shape[0], embed_dim)

    compress_ratio, squeeze_factor, img_size = 3, 30, 64
    first_block = next((f"layers.{i}.residual_group.blocks.0." for i in range(num_layers) if depths[i]), None)
    if first_block is not None:
        cab = first_block + "conv_block.cab."
        compress_ratio = divisor_for(embed_dim, sd[cab + "0.weight"].shape[0])
        squeeze_factor = divisor_for(embed_dim, sd[cab + "3.attention.1.weight"].shape[0])
        block_window = square_side(sd[first_block + "attn.relative_position_bias_table"].shape[0])
        if block_window is not None and block_window != 2 * window_size - 1:
            img_size = (block_window + 1) // 2  # blocks shrank their window to img_size < window_size
    ape_side = ape_img_size(sd, "HAT")
    ape = ape_side is not None
    if ape:
        img_size = ape_side

    upsampler, upscale = detect_reconstruction(sd, "HAT")
    return {
        "type": "HAT",
        "upscale": upscale if upscale is not None else 2,
        "in_chans": int(in_chans),
        "img_size": img_size,
        "window_size": window_size,
        "compress_ratio": compress_ratio,
        "squeeze_factor": squeeze_factor,
        "conv_scale": 0.01,
        "overlap_ratio": _overlap_ratio(window_size, ows),
        "img_range": 1.0,
        "depths": depths,
        "embed_dim": int(embed_dim),
        "num_heads": [int(h) for h in num_heads],
        "mlp_ratio": mlp_ratio,
        "upsampler": upsampler,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
        "ape": ape,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "qkv_bias": ocab + "qkv.bias" in sd,
    }
