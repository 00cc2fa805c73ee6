"""Read DRSformer hyper-parameters back from a state dict (keys as in the official checkpoints)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from restore.archs.layers.expansion import infer_expansion_factor

__all__ = ["detect"]

_REQUIRED = (
    "patch_embed.proj.weight",
    "encoder_level1.0.attn.temperature",
    "encoder_level1.0.attn.attn1",
    "encoder_level1.0.ffn.dwconv3x3.weight",
    "encoder_level1.0.ffn.project_in.weight",
    "latent.0.attn.temperature",
    "decoder_level1.0.attn.temperature",
    "up2_1.body.0.weight",
    "output.weight",
)
_LEVELS = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")


def _block_count(state_dict: Mapping[str, torch.Tensor], level: str) -> int:
    pattern = re.compile(rf"^{level}\.(\d+)\.")
    indices = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return max(indices) + 1


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """``network_g`` (with ``type: DRSformer``) that builds a network with exactly these keys and shapes.

    ``mefc`` is True when the MEFC sub-networks (``encoder_level0.*``, ``refinement.*``) are present.
    Returns None when the keys are not DRSformer's.
    """
    if any(key not in state_dict for key in _REQUIRED):
        return None
    embed = state_dict["patch_embed.proj.weight"]
    dim = int(embed.shape[0])
    widths = [dim, dim * 2, dim * 4, dim * 8]
    hidden = [int(state_dict[f"{level}.0.ffn.project_in.weight"].shape[0]) // 2 for level in _LEVELS]
    return {
        "type": "DRSformer",
        "inp_channels": int(embed.shape[1]),
        "out_channels": int(state_dict["output.weight"].shape[0]),
        "dim": dim,
        "num_blocks": [_block_count(state_dict, level) for level in _LEVELS],
        "heads": [int(state_dict[f"{level}.0.attn.temperature"].shape[0]) for level in _LEVELS],
        "ffn_expansion_factor": infer_expansion_factor(zip(widths, hidden), preferred=(2.66, 2.0, 3.0, 4.0)),
        "bias": "encoder_level1.0.attn.qkv.bias" in state_dict,
        "LayerNorm_type": "WithBias" if "encoder_level1.0.norm1.body.bias" in state_dict else "BiasFree",
        "mefc": "encoder_level0.layers.0.ca_fc.0.weight" in state_dict,
    }
