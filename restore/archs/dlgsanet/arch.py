"""DLGSANet: lightweight dynamic local and global self-attention network for image super-resolution.

"DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image Super-Resolution",
ICCV 2023. Official code: github.com/NeonLeexiang/DLGSANet @ 0974b9a. State-dict keys,
their order and shapes are identical to the official ``DLGSANet``.

Residual groups alternate a dynamic local mixer (a per-pixel 7x7 depthwise convolution whose taps a small
hyper-network predicts from the features) with sparse global channel attention (ReLU instead of softmax, run on
TLC windows at test time), each followed by a gated depthwise-conv FFN; a pixel-shuffle head upsamples.
Differences from the official code that do not change results: no CUDA extension (the dynamic convolution is
:func:`restore.ops.dynamic_depthwise_conv`), TLC works for any batch size and keeps no state on the module, and
the FFN's GELU is ``torch.nn.functional.gelu`` (exact), which the published file uses without importing.
"""

from __future__ import annotations

import torch
from torch import nn

from restore.archs.dlgsanet.dynamic_conv_export import dynamic_conv_export_forward
from restore.archs.layers.feedforward import GatedDconvFeedForward, PointwiseFeedForward
from restore.archs.layers.norm import ChannelLayerNorm
from restore.archs.layers.pointwise import PointwiseConv2d
from restore.archs.layers.transposed_attention import WindowedTransposedAttention
from restore.archs.layers.upsample import Upsample
from restore.ops.dynamic_conv import dynamic_depthwise_conv
from restore.utils.registry import ARCH_REGISTRY

__all__ = ["PRESETS", "TLC_KERNEL_BY_SCALE", "DLGSANet"]

#: Official TLC window per upscale factor (option files: x2 -> 96, x3 -> 72, x4 -> 48).
TLC_KERNEL_BY_SCALE = {2: 96, 3: 72, 4: 48}
_HYPERNET_REDUCTION = 4
_ATTENTION_MODES = {"relu": "relu", "gelu": "gelu", "sigmoid": "sigmoid"}  # anything else: identity


def _feed_forward(kind: str, dim: int, factor: float) -> nn.Module:
    if kind == "GDFN":
        return GatedDconvFeedForward(dim, factor, bias=False)
    if kind == "BaseFFN":
        return PointwiseFeedForward(dim, factor, bias=True)
    raise ValueError(f"DLGSANet: unknown FFN type {kind!r}; expected 'GDFN' or 'BaseFFN'")


# --------------------------------------------------------------------------------------------------------------
# Local mixer: dynamic depthwise convolution
class DynamicDepthwiseConv(nn.Module):
    """Depthwise K x K convolution with per-pixel taps predicted from the input itself.

    Hyper-network: ``conv1`` (1x1 C -> C/4, then depthwise K x K) and ``conv2`` (1x1 C/4 -> K*K*G), giving G sets
    of K x K taps at every pixel; every group of ``group_channels`` channels shares one set. No output bias.

    Args:
        channels: C; the hyper-network's hidden width is C // 4.
        kernel_size: K (odd).
        group_channels: the official ``idynamic_num_heads``; G = C // group_channels tap sets, each shared by
            C // G consecutive channels (C must be divisible by G).
        bias: biases in the hyper-network convolutions.
    """

    def __init__(self, channels: int, kernel_size: int, group_channels: int, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"DLGSANet: window_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.groups = channels // group_channels
        if self.groups == 0 or channels % self.groups:
            raise ValueError(
                f"DLGSANet: dim {channels} must split evenly into dim // idynamic_num_heads = {self.groups} tap sets"
            )
        hidden = channels // _HYPERNET_REDUCTION
        self.conv1 = nn.Sequential(
            PointwiseConv2d(channels, hidden, bias=bias),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=bias),
        )
        self.conv2 = nn.Sequential(PointwiseConv2d(hidden, kernel_size**2 * self.groups, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        if torch.compiler.is_exporting():  # the same function in the form ONNX Runtime runs fastest
            return dynamic_conv_export_forward(self, x)
        batch, _, height, width = x.shape
        taps = self.conv2(self.conv1(x)).view(batch, self.groups, self.kernel_size, self.kernel_size, height, width)
        return dynamic_depthwise_conv(x, taps)


class LocalMixer(nn.Module):
    """``conv0`` (1x1) -> ``conv`` (dynamic depthwise, or a static depthwise K x K) -> ``conv1`` (1x1)."""

    def __init__(self, dim: int, window_size: int, dynamic: bool, group_channels: int) -> None:
        super().__init__()
        self.conv0 = PointwiseConv2d(dim, dim, bias=False)
        self.conv1 = PointwiseConv2d(dim, dim, bias=False)
        if dynamic:
            self.conv = DynamicDepthwiseConv(dim, window_size, group_channels, bias=True)
        else:
            self.conv = nn.Conv2d(dim, dim, window_size, padding=window_size // 2, groups=dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv(self.conv0(x)))


class LocalBlock(nn.Module):
    """``x + IDynamicDWConv(norm1(x))`` then ``x + IDynamic_ffn(norm2(x))``. (B, dim, H, W) -> same."""

    def __init__(
        self, dim: int, window_size: int, group_channels: int, ffn_type: str, ffn_factor: float, dynamic: bool
    ) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, export_channels_last=True)
        self.IDynamicDWConv = LocalMixer(dim, window_size, dynamic, group_channels)
        self.norm2 = ChannelLayerNorm(dim, export_channels_last=True)
        self.IDynamic_ffn = _feed_forward(ffn_type, dim, ffn_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.IDynamicDWConv(self.norm1(x)) + x
        return self.IDynamic_ffn(self.norm2(x)) + x


class GlobalBlock(nn.Module):
    """``x + restormer_attn(norm3(x))`` then ``x + restormer_ffn(norm4(x))``. (B, dim, H, W) -> same.

    ``mode`` is the attention activation: ``"relu"`` (sparse global attention), ``"softmax"`` (Restormer's MDTA),
    ``"gelu"``, ``"sigmoid"`` or ``"linear"``.
    """

    def __init__(
        self, dim: int, num_heads: int, ffn_type: str, ffn_factor: float, tlc_flag: bool, tlc_kernel: int, mode: str
    ) -> None:
        super().__init__()
        self.norm3 = ChannelLayerNorm(dim, export_channels_last=True)
        self.restormer_attn = WindowedTransposedAttention(dim, num_heads, False, mode, tlc_flag, tlc_kernel)
        self.norm4 = ChannelLayerNorm(dim, export_channels_last=True)
        self.restormer_ffn = _feed_forward(ffn_type, dim, ffn_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.restormer_attn(self.norm3(x)) + x
        return self.restormer_ffn(self.norm4(x)) + x


class ResidualGroup(nn.Module):
    """``body(x) + x``; ``body`` = the blocks of ``buildblock_type`` then a 3x3 conv."""

    def __init__(self, dim: int, blocks: int, buildblock_type: str, local: dict, global_: dict) -> None:
        super().__init__()
        layout = {
            "sparseedge": ("local", "sparse"),
            "edge": ("local", "dense"),
            "idynamic": ("local",),
            "restormer": ("dense",),
        }
        if buildblock_type not in layout:
            raise ValueError(f"DLGSANet: unknown buildblock_type {buildblock_type!r}; expected one of {list(layout)}")
        body: list[nn.Module] = []
        for _ in range(blocks):
            for kind in layout[buildblock_type]:
                if kind == "local":
                    body.append(LocalBlock(dim, **local))
                elif kind == "sparse":
                    body.append(GlobalBlock(dim, **global_))
                else:  # Restormer blocks: softmax attention, TLC window fixed at 48 in the official code
                    body.append(GlobalBlock(dim, **{**global_, "tlc_kernel": 48, "mode": "softmax"}))
        body.append(nn.Conv2d(dim, dim, 3, 1, 1))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class _ShallowConv(nn.Module):
    """3x3 conv ``proj`` from the image to ``dim`` features (bias-free)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


@ARCH_REGISTRY.register()
class DLGSANet(nn.Module):
    """DLGSANet super-resolution network; ``(B, in_chans, H, W) -> (B, in_chans, upscale*H, upscale*W)``.

    Args:
        in_chans: image channels (3: RGB mean shift (0.4488, 0.4371, 0.4040) applied; otherwise none).
        dim: feature width C.
        groups: residual groups.
        blocks: (local, global) block pairs per group.
        buildblock_type: ``"sparseedge"`` (official: dynamic local + ReLU sparse global), ``"edge"`` (global
            blocks use softmax attention), ``"idynamic"`` (local only), ``"restormer"`` (softmax global only).
        window_size: K of the dynamic depthwise convolution (odd).
        idynamic_num_heads: channels per dynamic tap set (G = dim // idynamic_num_heads sets).
        idynamic_ffn_type, restormer_ffn_type: ``"GDFN"`` or ``"BaseFFN"``.
        idynamic_ffn_expansion_factor, restormer_ffn_expansion_factor: FFN hidden width factors.
        idynamic: dynamic (True) or static depthwise local convolution.
        restormer_num_heads: heads of the global channel attention.
        tlc_flag: eval mode attends over TLC windows of ``tlc_kernel`` pixels (x2/x3/x4 official: 96/72/48).
        tlc_kernel: TLC window of the sparse blocks (``"edge"``/``"restormer"`` blocks always use 48).
        activation: global attention activation: ``"relu"``, ``"gelu"``, ``"sigmoid"``, anything else identity.
        upscale: upscaling factor for the pixel-shuffle heads.
        img_range: multiplier applied after the mean shift (and divided out at the end).
        upsampler: ``"pixelshuffledirect"`` (one conv + shuffle), ``"pixelshuffle"`` (64-channel conv, shuffle
            stages, conv), anything else: no upscaling (one 3x3 conv).
        body_norm: LayerNorm before the first and after the last residual group.
        input_resolution: accepted for compatibility with official option files; no effect.
    """

    pad_multiple = 1
    clamp_output = True
    #: Attention scores are bounded (cosine x temperature); norms, TLC merging and the dynamic convolution's
    #: accumulation run in float32 for half inputs.
    supports_fp16 = True

    def __init__(
        self,
        in_chans: int = 3,
        dim: int = 60,
        groups: int = 4,
        blocks: int = 3,
        buildblock_type: str = "edge",
        window_size: int = 7,
        idynamic_num_heads: int = 6,
        idynamic_ffn_type: str = "GDFN",
        idynamic_ffn_expansion_factor: float = 2.0,
        idynamic: bool = True,
        restormer_num_heads: int = 6,
        restormer_ffn_type: str = "GDFN",
        restormer_ffn_expansion_factor: float = 2.0,
        tlc_flag: bool = True,
        tlc_kernel: int = 48,
        activation: str = "relu",
        upscale: int = 4,
        img_range: float = 1.0,
        upsampler: str = "",
        body_norm: bool = False,
        input_resolution: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.img_range = img_range
        self.upscale = upscale
        self.upsampler = upsampler
        self.scale = upscale if upsampler in ("pixelshuffledirect", "pixelshuffle") else 1
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)

        local = {
            "window_size": window_size,
            "group_channels": idynamic_num_heads,
            "ffn_type": idynamic_ffn_type,
            "ffn_factor": idynamic_ffn_expansion_factor,
            "dynamic": idynamic,
        }
        global_ = {
            "num_heads": restormer_num_heads,
            "ffn_type": restormer_ffn_type,
            "ffn_factor": restormer_ffn_expansion_factor,
            "tlc_flag": tlc_flag,
            "tlc_kernel": tlc_kernel,
            "mode": _ATTENTION_MODES.get(activation, "linear"),
        }
        self.overlap_embed = nn.Sequential(_ShallowConv(in_chans, dim))
        body: list[nn.Module] = [ChannelLayerNorm(dim, export_channels_last=True)] if body_norm else []
        body += [ResidualGroup(dim, blocks, buildblock_type, local, global_) for _ in range(groups)]
        if body_norm:
            body.append(ChannelLayerNorm(dim, export_channels_last=True))
        body.append(nn.Conv2d(dim, dim, 3, 1, 1))
        self.deep_feature_extraction = nn.Sequential(*body)

        if upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(dim, in_chans * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale))
        elif upsampler == "pixelshuffle":
            features = 64
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, features, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, features)
            self.conv_last = nn.Conv2d(features, in_chans, 3, 1, 1)
        else:
            self.conv_last = nn.Conv2d(dim, in_chans, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` (B, C, H, W), float RGB in [0, 1] (any H, W) -> (B, C, scale*H, scale*W), not clamped."""
        mean = self.mean.to(x.dtype)
        feat = self.overlap_embed((x - mean) * self.img_range)
        feat = self.deep_feature_extraction(feat) + feat
        if self.upsampler == "pixelshuffledirect":
            out = self.upsample(feat)
        elif self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        else:
            out = self.conv_last(feat)
        return out / self.img_range + mean


def _official(size: str, scale: int) -> dict:
    dim, groups, blocks = {"tiny": (48, 3, 3), "light": (48, 4, 3), "large": (90, 6, 4)}[size]
    return {
        "upscale": scale,
        "in_chans": 3,
        "dim": dim,
        "groups": groups,
        "blocks": blocks,
        "buildblock_type": "sparseedge",
        "window_size": 7,
        "idynamic_num_heads": 6,
        "idynamic_ffn_type": "GDFN",
        "idynamic_ffn_expansion_factor": 2.0,
        "idynamic": True,
        "restormer_num_heads": 6,
        "restormer_ffn_type": "GDFN",
        "restormer_ffn_expansion_factor": 2.0,
        "tlc_flag": True,
        "tlc_kernel": TLC_KERNEL_BY_SCALE[scale],
        "activation": "relu",
        "body_norm": False,
        "img_range": 1.0,
        "upsampler": "pixelshuffledirect",
    }


#: Official configurations (``network_g`` without ``type``): tiny (48C 3G 3B), light (48C 4G 3B), large (90C 6G 4B).
PRESETS: dict[str, dict] = {f"{size}_x{scale}": _official(size, scale) for size in ("tiny", "light", "large")
                            for scale in (2, 3, 4)}
