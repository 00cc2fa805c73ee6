"""DRSformer: sparse Transformer for image deraining.

Chen, Li, Li, Pan, "Learning A Sparse Transformer Network for Effective Image Deraining", CVPR 2023.
Official code: github.com/cschenxiang/DRSformer @ e77bbb4. State-dict keys, their order and shapes are identical
to the official classes; ``mefc=False`` selects the variant without the mixture-of-experts feature compensators
(the official ``DRSformer_arch_200L+SPA.py``, used for Rain200L and SPA-Data).

A 4-level U-Net of sparse Transformer blocks: top-k sparse channel attention (TKSA) and a mixed-scale
feed-forward network (MSFN), optionally wrapped by MEFC before the encoder and after the decoder. Output =
input + predicted residual; H and W must be multiples of 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.drsformer.msfn_export import msfn_export_forward
from restore.archs.layers.norm import ChannelLayerNorm
from restore.archs.layers.transposed_attention import TransposedAttentionProjections
from restore.ops.grouped_conv import grouped_conv2d
from restore.utils.registry import ARCH_REGISTRY

__all__ = ["PRESETS", "DRSformer"]


# --------------------------------------------------------------------------------------------------------------
# Transformer block: top-k sparse attention + mixed-scale feed-forward
class TopKSparseAttention(TransposedAttentionProjections):
    """Top-k sparse channel attention (TKSA): four masked softmaxes keeping 1/2, 2/3, 3/4, 4/5 of each row,
    mixed with the learnable weights ``attn1..attn4`` (each shape (1,), initialised to 0.2).

    (B, dim, H, W) -> (B, dim, H, W).
    """

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__(dim, num_heads, bias)
        self.attn1 = nn.Parameter(torch.tensor([0.2]))
        self.attn2 = nn.Parameter(torch.tensor([0.2]))
        self.attn3 = nn.Parameter(torch.tensor([0.2]))
        self.attn4 = nn.Parameter(torch.tensor([0.2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = (self.attn1, self.attn2, self.attn3, self.attn4)
        return self.project_out(self.attend(self.project_qkv(x), "topk", weights))


class MixedScaleFeedForward(nn.Module):
    """Mixed-scale feed-forward network (MSFN), hidden width ``h = int(dim * ffn_expansion_factor)``.

    ``project_in`` (dim -> 2h); parallel ReLU depthwise 3x3 and 5x5 branches; their first halves are interleaved
    into a grouped 3x3 conv, their second halves into a grouped 5x5 conv (2 inputs -> 1 output channel each),
    both ReLU; ``project_out`` (2h -> dim).
    """

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        wide = hidden * 2
        self.project_in = nn.Conv2d(dim, wide, kernel_size=1, bias=bias)
        self.dwconv3x3 = nn.Conv2d(wide, wide, kernel_size=3, padding=1, groups=wide, bias=bias)
        self.dwconv5x5 = nn.Conv2d(wide, wide, kernel_size=5, padding=2, groups=wide, bias=bias)
        self.dwconv3x3_1 = nn.Conv2d(wide, hidden, kernel_size=3, padding=1, groups=hidden, bias=bias)
        self.dwconv5x5_1 = nn.Conv2d(wide, hidden, kernel_size=5, padding=2, groups=hidden, bias=bias)
        self.project_out = nn.Conv2d(wide, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, dim, H, W)."""
        if torch.compiler.is_exporting():  # the same function in the form ONNX Runtime runs fastest
            return msfn_export_forward(self, x)
        x = self.project_in(x)
        first3, second3 = F.relu(self.dwconv3x3(x)).chunk(2, dim=1)
        first5, second5 = F.relu(self.dwconv5x5(x)).chunk(2, dim=1)
        small = F.relu(self._mix(self.dwconv3x3_1, torch.cat([first3, first5], dim=1)))
        large = F.relu(self._mix(self.dwconv5x5_1, torch.cat([second3, second5], dim=1)))
        return self.project_out(torch.cat([small, large], dim=1))

    @staticmethod
    def _mix(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """The 2-inputs-per-group conv through :func:`restore.ops.grouped_conv2d` (depthwise + pair sum on CPU)."""
        return grouped_conv2d(x, conv.weight, conv.bias, padding=conv.padding[0])


class SparseTransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``. (B, dim, H, W) -> same."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, bias_free_norm: bool):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, bias_free=bias_free_norm)
        self.attn = TopKSparseAttention(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, bias_free=bias_free_norm)
        self.ffn = MixedScaleFeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# --------------------------------------------------------------------------------------------------------------
# Mixture of experts feature compensator (MEFC)
_EXPERT_COUNT = 8  # sep 1/3/5/7, dilated 3/5/7, average pool 3


class _Convs(nn.Module):
    """A bias-free conv chain stored as ``op`` (keys ``op.<index>.weight``)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.op = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.op:
            x = _per_channel_scale(layer, x) if _is_depthwise_1x1(layer) else layer(x)
        return x


def _is_depthwise_1x1(layer: nn.Module) -> bool:
    return (
        isinstance(layer, nn.Conv2d)
        and layer.kernel_size == (1, 1)
        and layer.groups == layer.in_channels > 1
        and layer.bias is None
    )


def _per_channel_scale(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A bias-free depthwise 1x1 conv as the product it is, ``x * w[c]``: the same single product per element, while
    PyTorch's CPU convolution runs it group by group on channels-last inputs (one call per channel)."""
    return x * conv.weight.view(1, -1, 1, 1)


def _separable_expert(channels: int, size: int) -> _Convs:
    """Depthwise k x k, 1x1, ReLU, depthwise k x k, 1x1 (all bias-free, 'same' padding)."""
    pad = size // 2
    return _Convs(
        nn.Conv2d(channels, channels, size, padding=pad, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(channels, channels, size, padding=pad, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
    )


def _dilated_expert(channels: int, size: int) -> _Convs:
    """Depthwise k x k with dilation 2 ('same' padding k - 1), then 1x1 (bias-free)."""
    return _Convs(
        nn.Conv2d(channels, channels, size, padding=size - 1, dilation=2, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
    )


def _experts(channels: int) -> list[nn.Module]:
    return [
        *(_separable_expert(channels, size) for size in (1, 3, 5, 7)),
        *(_dilated_expert(channels, size) for size in (3, 5, 7)),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    ]


class ExpertRouter(nn.Module):
    """Per-image mixing logits: global average pool -> ``ca_fc`` (Linear C->64, ReLU, Linear 64->32).

    (B, C, H, W) -> (B, steps=4, 8) logits (softmax is applied by the caller).
    """

    def __init__(self, channels: int, steps: int, experts: int) -> None:
        super().__init__()
        self.steps, self.experts = steps, experts
        self.ca_fc = nn.Sequential(
            nn.Linear(channels, steps * experts * 2), nn.ReLU(), nn.Linear(steps * experts * 2, steps * experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca_fc(x.mean(dim=(2, 3))).view(-1, self.steps, self.experts)


class ExpertMixture(nn.Module):
    """One step: the 8 experts' outputs scaled by per-image weights, concatenated, fused by ``_out`` (1x1, ReLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._ops = nn.ModuleList(_experts(channels))
        self._out = nn.Sequential(nn.Conv2d(channels * _EXPERT_COUNT, channels, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), weights (B, 8) -> (B, C, H, W)."""
        scaled = [expert(x) * weights[:, index].view(-1, 1, 1, 1) for index, expert in enumerate(self._ops)]
        return self._out(torch.cat(scaled, dim=1))


class ExpertSteps(nn.Module):
    """``preprocess`` (1x1 + ReLU), then per step ``s = relu(mixture_i(s, w[:, i]) + s)``."""

    def __init__(self, steps: int, channels: int) -> None:
        super().__init__()
        self.preprocess = _Convs(nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU())
        self._ops = nn.ModuleList(ExpertMixture(channels) for _ in range(steps))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), weights (B, steps, 8) -> (B, C, H, W)."""
        x = self.preprocess(x)
        for index, step in enumerate(self._ops):
            x = F.relu(step(x, weights[:, index]) + x)
        return x


class FeatureCompensator(nn.Module):
    """MEFC: ``layers = [ExpertRouter, ExpertSteps]``; router softmax over the 8 experts. (B, C, H, W) -> same."""

    def __init__(self, channels: int, steps: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ExpertRouter(channels, steps, _EXPERT_COUNT), ExpertSteps(steps, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        router, body = self.layers
        return body(x, router(x).softmax(dim=-1))


# --------------------------------------------------------------------------------------------------------------
# U-Net plumbing
class _PatchEmbed(nn.Module):
    """3x3 conv ``proj`` from the image to ``dim`` features (bias-free)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _Resample(nn.Module):
    """``body``: bias-free 3x3 conv then pixel (un)shuffle by 2. Down: C -> 2C at half size; up: C -> C/2."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        width = channels // 2 if down else channels * 2
        shuffle = nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2)
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), shuffle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@ARCH_REGISTRY.register()
class DRSformer(nn.Module):
    """DRSformer deraining network; ``(B, inp_channels, H, W) -> (B, out_channels, H, W)``, H and W multiples of 8.

    Args:
        inp_channels, out_channels: image channels (equal: the output adds the input).
        dim: width of level 1 (levels 2-4: 2, 4, 8 x dim; decoder level 1: 2 x dim).
        num_blocks: Transformer blocks of levels 1-4 (decoders repeat levels 1-3).
        heads: attention heads of levels 1-4.
        ffn_expansion_factor: MSFN hidden width factor.
        bias: biases in attention, MSFN, channel reductions and the output conv.
        LayerNorm_type: ``"BiasFree"``, anything else means WithBias.
        mefc: include the MEFC sub-networks ``encoder_level0`` and ``refinement`` (official Rain200H / DID / DDN
            models); ``False`` for the official Rain200L / SPA-Data models.
    """

    scale = 1
    pad_multiple = 8
    clamp_output = True
    #: What the model restores; ``restore derain`` accepts only deraining models.
    task = "derain"
    #: Kwargs read from the weights when a checkpoint is loaded (see ``restore.archs.build_network``).
    checkpoint_kwargs = ("mefc",)
    #: Restormer-family U-Nets carry large activations in their residual streams; run them in float32 / bfloat16.
    supports_fp16 = False
    #: NHWC on the CPU: its depthwise and 1x1 convolutions run 1.3-1.9x faster there (``docs/benchmarks.md``).
    cpu_memory_format = "channels_last"

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",
        mefc: bool = True,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f"DRSformer: num_blocks and heads need 4 entries, got {list(num_blocks)}, {list(heads)}")
        if out_channels != inp_channels:
            raise ValueError(f"DRSformer: out_channels ({out_channels}) must equal inp_channels ({inp_channels})")
        self.mefc = mefc
        bias_free = LayerNorm_type == "BiasFree"

        def level(width: int, count: int, num_heads: int) -> nn.Sequential:
            return nn.Sequential(
                *(SparseTransformerBlock(width, num_heads, ffn_expansion_factor, bias, bias_free) for _ in range(count))
            )

        self.patch_embed = _PatchEmbed(inp_channels, dim)
        if mefc:
            self.encoder_level0 = FeatureCompensator(dim)
        self.encoder_level1 = level(dim, num_blocks[0], heads[0])
        self.down1_2 = _Resample(dim, down=True)
        self.encoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.down2_3 = _Resample(dim * 2, down=True)
        self.encoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.down3_4 = _Resample(dim * 4, down=True)
        self.latent = level(dim * 8, num_blocks[3], heads[3])
        self.up4_3 = _Resample(dim * 8, down=False)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.up3_2 = _Resample(dim * 4, down=False)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.up2_1 = _Resample(dim * 2, down=False)
        self.decoder_level1 = level(dim * 2, num_blocks[0], heads[0])
        if mefc:
            self.refinement = FeatureCompensator(dim * 2)
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Derain ``x`` (B, C, H, W), float RGB in [0, 1], H and W multiples of 8 -> (B, C, H, W) (not clamped)."""
        if x.shape[-2] % self.pad_multiple or x.shape[-1] % self.pad_multiple:
            raise ValueError(f"DRSformer: input H, W must be multiples of 8, got {tuple(x.shape[-2:])}")
        feat = self.patch_embed(x)
        if self.mefc:
            feat = self.encoder_level0(feat)
        enc1 = self.encoder_level1(feat)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1))
        if self.mefc:
            dec1 = self.refinement(dec1)
        return self.output(dec1) + x


_OFFICIAL = {
    "inp_channels": 3,
    "out_channels": 3,
    "dim": 48,
    "num_blocks": [4, 6, 6, 8],
    "heads": [1, 2, 4, 8],
    "ffn_expansion_factor": 2.66,
    "bias": False,
    "LayerNorm_type": "WithBias",
}

#: Official configurations (``network_g`` without ``type``) by training set; Rain200L and SPA-Data omit MEFC.
PRESETS: dict[str, dict] = {
    "Rain200H": {**_OFFICIAL, "mefc": True},
    "Rain200L": {**_OFFICIAL, "mefc": False},
    "DID": {**_OFFICIAL, "mefc": True},
    "DDN": {**_OFFICIAL, "mefc": True},
    "SPA": {**_OFFICIAL, "mefc": False},
}
