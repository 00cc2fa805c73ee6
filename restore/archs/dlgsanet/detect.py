"""Read DLGSANet hyper-parameters back from a state dict (keys as in the official checkpoints).

Not recoverable from shapes, and therefore set to the official values: ``tlc_kernel`` (96 / 72 / 48 for
x2 / x3 / x4, 48 otherwise), ``tlc_flag`` True, ``activation`` "relu", ``img_range`` 1.0, and the choice between
ReLU-sparse and softmax global blocks (identical keys): alternating local/global blocks read as the official
``"sparseedge"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from restore.archs.dlgsanet.arch import TLC_KERNEL_BY_SCALE
from restore.archs.layers.expansion import infer_expansion_factor

__all__ = ["detect"]

_PREFIX = "deep_feature_extraction"
_FACTORS = (2.0, 2.66, 4.0, 1.0, 3.0)
_DEFAULTS = {"window_size": 7, "idynamic_num_heads": 6, "restormer_num_heads": 6}


def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


def _ffn(state_dict: Mapping[str, torch.Tensor], prefix: str, dim: int) -> tuple[str, float]:
    if f"{prefix}.project_in.weight" in state_dict:
        hidden = int(state_dict[f"{prefix}.project_in.weight"].shape[0]) // 2
        return "GDFN", infer_expansion_factor([(dim, hidden)], _FACTORS)
    hidden = int(state_dict[f"{prefix}.body.0.weight"].shape[0])
    return "BaseFFN", infer_expansion_factor([(dim, hidden)], _FACTORS)


def _group_channels(dim: int, tap_sets: int) -> int:
    """The ``idynamic_num_heads`` n with ``dim // n == tap_sets`` (the official G = dim // n)."""
    candidates = [n for n in range(1, dim + 1) if dim // n == tap_sets]
    return candidates[0] if candidates else max(dim // max(tap_sets, 1), 1)


def _upsampler(state_dict: Mapping[str, torch.Tensor], in_chans: int) -> tuple[str, int]:
    if "conv_before_upsample.0.weight" in state_dict:
        stages = _indices(state_dict, r"^upsample\.(\d+)\.weight$")
        features = int(state_dict["conv_before_upsample.0.weight"].shape[0])
        if int(state_dict["upsample.0.weight"].shape[0]) == 9 * features:
            return "pixelshuffle", 3
        return "pixelshuffle", 2 ** len(stages)
    if "upsample.0.weight" in state_dict:
        return "pixelshuffledirect", math.isqrt(int(state_dict["upsample.0.weight"].shape[0]) // in_chans)
    return "", 1


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """``network_g`` (with ``type: DLGSANet``) that builds a network with exactly these keys and shapes.

    Returns None when the keys are not DLGSANet's.
    """
    if "overlap_embed.0.proj.weight" not in state_dict:
        return None
    groups = _indices(state_dict, rf"^{_PREFIX}\.(\d+)\.body\.\d+\.")
    if not groups:
        return None
    embed = state_dict["overlap_embed.0.proj.weight"]
    dim, in_chans = int(embed.shape[0]), int(embed.shape[1])
    first = f"{_PREFIX}.{groups[0]}.body"
    layers = _indices(state_dict, rf"^{re.escape(first)}\.(\d+)\.")
    kinds = []
    for index in layers:
        if f"{first}.{index}.norm1.body.weight" in state_dict:
            kinds.append("local")
        elif f"{first}.{index}.norm3.body.weight" in state_dict:
            kinds.append("global")
    local = next((f"{first}.{i}" for i, kind in zip(layers, kinds) if kind == "local"), None)
    global_ = next((f"{first}.{i}" for i, kind in zip(layers, kinds) if kind == "global"), None)
    if local and global_:
        buildblock_type, blocks = "sparseedge", len(kinds) // 2
    elif local:
        buildblock_type, blocks = "idynamic", len(kinds)
    elif global_:
        buildblock_type, blocks = "restormer", len(kinds)
    else:
        return None

    found: dict[str, Any] = dict(_DEFAULTS)
    idynamic = True
    ffn_types = {"idynamic": ("GDFN", 2.0), "restormer": ("GDFN", 2.0)}
    if local:
        dynamic_key = f"{local}.IDynamicDWConv.conv.conv2.0.weight"
        idynamic = dynamic_key in state_dict
        if idynamic:
            size = int(state_dict[f"{local}.IDynamicDWConv.conv.conv1.1.weight"].shape[-1])
            found["window_size"] = size
            found["idynamic_num_heads"] = _group_channels(dim, int(state_dict[dynamic_key].shape[0]) // size**2)
        else:
            found["window_size"] = int(state_dict[f"{local}.IDynamicDWConv.conv.weight"].shape[-1])
        ffn_types["idynamic"] = _ffn(state_dict, f"{local}.IDynamic_ffn", dim)
    if global_:
        found["restormer_num_heads"] = int(state_dict[f"{global_}.restormer_attn.temperature"].shape[0])
        ffn_types["restormer"] = _ffn(state_dict, f"{global_}.restormer_ffn", dim)
    upsampler, upscale = _upsampler(state_dict, in_chans)
    return {
        "type": "DLGSANet",
        "upscale": upscale,
        "in_chans": in_chans,
        "dim": dim,
        "groups": len(groups),
        "blocks": blocks,
        "buildblock_type": buildblock_type,
        "window_size": found["window_size"],
        "idynamic_num_heads": found["idynamic_num_heads"],
        "idynamic_ffn_type": ffn_types["idynamic"][0],
        "idynamic_ffn_expansion_factor": ffn_types["idynamic"][1],
        "idynamic": idynamic,
        "restormer_num_heads": found["restormer_num_heads"],
        "restormer_ffn_type": ffn_types["restormer"][0],
        "restormer_ffn_expansion_factor": ffn_types["restormer"][1],
        "tlc_flag": True,
        "tlc_kernel": TLC_KERNEL_BY_SCALE.get(upscale, 48),
        "activation": "relu",
        "body_norm": f"{_PREFIX}.0.body.weight" in state_dict,
        "img_range": 1.0,
        "upsampler": upsampler,
    }
