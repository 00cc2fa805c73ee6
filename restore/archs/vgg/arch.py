"""VGG feature extractor for perceptual losses, without torchvision (BasicSR's ``VGGFeatureExtractor``)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from restore.archs.vgg.weights import read_state_dict, resolve_vgg_weights
from restore.utils.registry import ARCH_REGISTRY

#: Convolutions per stage of each VGG depth (torchvision configurations A, B, D, E); every stage ends in a pool.
STAGES = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)


def layer_names(vgg_type: str) -> list[str]:
    """Layer names in ``features`` order, e.g. ``conv1_1, relu1_1, conv1_2, ..., pool5`` (``bn*`` for ``_bn``)."""
    depth = vgg_type.removesuffix("_bn")
    if depth not in STAGES:
        known = ", ".join(f"{d}{s}" for d in STAGES for s in ("", "_bn"))
        raise ValueError(f"VGGFeatureExtractor: vgg_type must be one of {known}, got {vgg_type!r}")
    names = []
    for stage, convs in enumerate(STAGES[depth], start=1):
        for i in range(1, convs + 1):
            names.append(f"conv{stage}_{i}")
            if vgg_type.endswith("_bn"):
                names.append(f"bn{stage}_{i}")
            names.append(f"relu{stage}_{i}")
        names.append(f"pool{stage}")
    return names


@ARCH_REGISTRY.register()
class VGGFeatureExtractor(nn.Module):
    """Features of a pretrained VGG at the named layers, e.g. ``conv5_4`` (before its ReLU) or ``relu5_4``.

    Args:
        layer_name_list: layers to return (names from :func:`layer_names`).
        vgg_type: ``vgg11``/``13``/``16``/``19``, optionally with ``_bn``. Default: ``vgg19``.
        use_input_norm: normalise [0, 1] input with the ImageNet mean/std. Default: True.
        range_norm: map [-1, 1] input to [0, 1] first. Default: False.
        requires_grad: train the VGG weights too (otherwise frozen and always in eval mode). Default: False.
        remove_pooling: drop the max-pool layers. Default: False.
        pooling_stride: stride of the 2x2 max-pools. Default: 2.
        vgg_weights: torchvision-format state dict file; default ``$RESTORE_VGG_WEIGHTS``, else
            ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (see ``restore.archs.vgg.weights``). Only the
            ``features.*`` entries up to the deepest requested layer are read (``classifier.*`` may be absent).

    Raises:
        FileNotFoundError: the weights file is missing (the message says where to put it).
        ValueError: unknown layer or VGG type; the file lacks a needed entry or has a wrong shape.
    """

    def __init__(
        self,
        layer_name_list: Sequence[str],
        vgg_type: str = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        requires_grad: bool = False,
        remove_pooling: bool = False,
        pooling_stride: int = 2,
        vgg_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.layer_name_list = list(layer_name_list)
        self.use_input_norm, self.range_norm = bool(use_input_norm), bool(range_norm)
        self.requires_grad = bool(requires_grad)
        names = layer_names(vgg_type)
        unknown = [n for n in self.layer_name_list if n not in names]
        if unknown or not self.layer_name_list:
            raise ValueError(f"VGGFeatureExtractor: unknown layer {unknown[0] if unknown else None!r} for {vgg_type}")
        path = resolve_vgg_weights(vgg_type, vgg_weights)
        names = names[: max(names.index(n) for n in self.layer_name_list) + 1]
        self.vgg_net = nn.Sequential(self._build(names, pooling_stride, remove_pooling))
        self._load(read_state_dict(path), names, path)
        for param in self.vgg_net.parameters():
            param.requires_grad_(self.requires_grad)
        self.train(self.requires_grad)
        if self.use_input_norm:
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @staticmethod
    def _build(names: list[str], pooling_stride: int, remove_pooling: bool) -> OrderedDict[str, nn.Module]:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for name in names:
            if name.startswith("conv"):
                out = WIDTHS[int(name[4]) - 1]  # conv<stage>_<i>
                layers[name] = nn.Conv2d(channels, out, 3, 1, 1)
                channels = out
            elif name.startswith("bn"):
                layers[name] = nn.BatchNorm2d(channels)
            elif name.startswith("relu"):
                layers[name] = nn.ReLU(inplace=True)
            elif not remove_pooling:
                layers[name] = nn.MaxPool2d(kernel_size=2, stride=pooling_stride)
        return layers

    def _load(self, state: dict[str, torch.Tensor], names: list[str], path: os.PathLike[str]) -> None:
        """Copy ``features.<index>.*`` (torchvision numbering = position in ``names``) into the layers."""
        for index, name in enumerate(names):
            if not (name.startswith("conv") or name.startswith("bn")):
                continue
            layer = getattr(self.vgg_net, name)
            own = {k: v for k, v in layer.state_dict().items() if k != "num_batches_tracked"}
            for key, target in own.items():
                source = state.get(f"features.{index}.{key}")
                if source is None:
                    raise ValueError(f"{path}: missing features.{index}.{key} (expected a torchvision VGG state dict)")
                if tuple(source.shape) != tuple(target.shape):
                    raise ValueError(
                        f"{path}: features.{index}.{key} has shape {tuple(source.shape)}, expected "
                        f"{tuple(target.shape)} (weights of another VGG type?)"
                    )
                with torch.no_grad():
                    target.copy_(source)

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        """Frozen extractors (``requires_grad=False``) stay in eval mode."""
        super().train(mode)
        if not self.requires_grad:
            self.vgg_net.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] (or [-1, 1] with ``range_norm``) -> ``{layer: (B, C_l, H_l, W_l)}``."""
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for name, layer in self.vgg_net.named_children():
            x = layer(x)
            if name in self.layer_name_list:
                out[name] = x.clone()  # the next ReLU works in place
        return out
