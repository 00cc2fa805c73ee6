"""Locating and reading torchvision-format VGG weights (nothing is ever downloaded).

Lookup order, first one that is set wins: an explicit path (``perceptual_opt.vgg_weights``), then the environment
variable ``RESTORE_VGG_WEIGHTS``, then BasicSR's default ``experiments/pretrained_models/<file>`` relative to the
current directory (``vgg19-dcbb9e9d.pth`` for VGG19).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from restore.checkpoint import CheckpointError

ENV_VAR = "RESTORE_VGG_WEIGHTS"
PRETRAINED_DIR = Path("experiments") / "pretrained_models"
URL_ROOT = "https://download.pytorch.org/models/"

#: torchvision's file for each VGG type; the suffix is the start of the file's SHA-256.
TORCHVISION_FILES = {
    "vgg11": "vgg11-bbd30ac9.pth",
    "vgg13": "vgg13-c768596a.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg11_bn": "vgg11_bn-6002323d.pth",
    "vgg13_bn": "vgg13_bn-abd245e5.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "vgg19_bn": "vgg19_bn-c79401a0.pth",
}


class VGGWeightsNotFound(CheckpointError, FileNotFoundError):
    """The VGG weights file is missing: unusable weights (a ``CheckpointError``) and a ``FileNotFoundError``."""


def resolve_vgg_weights(vgg_type: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Return the weights file to use for ``vgg_type``.

    Raises:
        FileNotFoundError: one line naming the missing file, where it came from, where to put the torchvision
            file and the start of its SHA-256 (``dcbb9e9d`` for VGG19).
    """
    name = TORCHVISION_FILES[vgg_type]
    if path is not None:
        found, origin = Path(path), "perceptual_opt.vgg_weights"
    elif os.environ.get(ENV_VAR):
        found, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        found, origin = PRETRAINED_DIR / name, "the default location"
    if found.is_file():
        return found
    sha_prefix = name.rsplit("-", 1)[1].split(".")[0]
    raise VGGWeightsNotFound(
        f"{vgg_type} weights not found: {found} ({origin}, from {Path.cwd()}); put torchvision's {name} "
        f"(SHA-256 starts with {sha_prefix}; {URL_ROOT}{name}) at {PRETRAINED_DIR / name}, "
        f"or point perceptual_opt.vgg_weights or ${ENV_VAR} to it"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a plain state dict on the CPU with the safe loader (memory-mapped when the file format allows)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable torch state dict ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a torchvision VGG state dict, got {type(state).__name__}")
    return state
