"""The SwinIR-style frame shared by HAT and DRCT: shallow conv, token body, pixel-shuffle reconstruction.

``forward``::

    x = (x - mean) * img_range
    if upsampler == 'pixelshuffle':
        x = conv_first(x)
        x = conv_after_body(forward_features(x)) + x        # forward_features: tokens -> body -> norm -> map
        x = conv_last(upsample(conv_before_upsample(x)))
    return x / img_range + mean

Subclasses build their head with ``_build_head``, then ``self.layers``, then call ``_build_tail``, and
implement ``forward_body``. The registration order reproduces the official state-dict key order:
``absolute_pos_embed`` (if ``ape``), buffers, ``conv_first``, ``patch_embed.norm``, ``layers.*``, ``norm``,
``conv_after_body``, ``conv_before_upsample.0``, ``upsample.*``, ``conv_last``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from restore.archs.layers.patch_embed import PatchEmbed, tokens_to_image
from restore.archs.layers.upsample import Upsample

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean used by the official SR models (not in the state dict)
NUM_FEAT = 64  # channels of the reconstruction branch
RESI_CONNECTIONS = ("1conv", "identity")
#: Reconstruction tails HAT and DRCT implement ("": none, the official default; the network returns its input).
UPSAMPLERS = ("pixelshuffle", "")


def to_pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``64`` -> ``(64, 64)``; a 2-sequence is returned as a tuple."""
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


class SwinSRBase(nn.Module):
    """Common frame; see the module docstring. Exposes ``scale``, ``pad_multiple``, ``clamp_output``,
    ``supports_fp16`` for the inference engine."""

    clamp_output = False
    #: float16 is not offered for these networks: the official code has no half-precision path (the weights were
    #: trained and validated in fp32 only), the token stream runs through 36-72 residual blocks with no
    #: normalisation of the stream itself, and HAT's conv branch is trained behind a 0.01 scale, i.e. with
    #: activations about 100x the attention branch's -- the places where trained magnitudes leave fp16's
    #: +-65504 range, which is why common loaders mark HAT-style models half-unsafe. bfloat16 keeps fp32's
    #: exponent range and is supported (random-weight parity models run finite in both fp16 and bf16).
    supports_fp16 = False

    def _build_head(
        self,
        *,
        img_size: int | Sequence[int],
        patch_size: int | Sequence[int],
        in_chans: int,
        embed_dim: int,
        ape: bool,
        patch_norm: bool,
        drop_rate: float,
        norm_layer: Callable[[int], nn.Module],
        img_range: float,
        upscale: int,
        upsampler: str,
        use_checkpoint: bool,
    ) -> None:
        self.img_range = img_range
        self.upscale = upscale
        self.upsampler = upsampler
        self.scale = upscale if upsampler == "pixelshuffle" else 1
        self.embed_dim = embed_dim
        self.num_features = embed_dim
        self.ape = ape
        self.patch_norm = patch_norm
        self.use_checkpoint = use_checkpoint
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)

        image, patch = to_pair(img_size), to_pair(patch_size)
        self.patches_resolution = (image[0] // patch[0], image[1] // patch[1])
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        if ape:
            num_patches = self.patches_resolution[0] * self.patches_resolution[1]
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02, a=-2.0, b=2.0)
        self.pos_drop = nn.Dropout(p=drop_rate)

    def _build_tail(
        self,
        *,
        in_chans: int,
        embed_dim: int,
        norm_layer: Callable[[int], nn.Module],
        resi_connection: str,
        upscale: int,
        upsampler: str,
    ) -> None:
        self.norm = norm_layer(embed_dim)
        if resi_connection == "1conv":
            self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        else:
            self.conv_after_body = nn.Identity()
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(negative_slope=0.01, inplace=True)
            )
            self.upsample = Upsample(upscale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
        self.apply(_init_weights)

    def forward_body(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """``(B, L, C)`` tokens through ``self.layers``; implemented by each network."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` for inputs the network cannot process (wrong rank / size)."""
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        if self.upsampler != "pixelshuffle":
            return
        h, w = x.shape[-2:]
        m = self.pad_multiple
        if h % m or w % m:
            raise ValueError(
                f"{type(self).__name__}: input H x W = {h} x {w} must be multiples of pad_multiple={m} "
                "(pad the input first)"
            )
        if self.ape and (h, w) != tuple(self.patches_resolution):
            raise ValueError(
                f"{type(self).__name__}: with ape=True the input must be {self.patches_resolution[0]} x "
                f"{self.patches_resolution[1]} (img_size), got {h} x {w}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)`` through the transformer body."""
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        x = self.forward_body(x, x_size)
        return tokens_to_image(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` float image (``[0, 1]`` when ``img_range == 1``) -> ``(B, in_chans, sH, sW)``,
        not clamped. ``H``, ``W`` must be multiples of ``pad_multiple``."""
        self.check_input(x)
        mean = self.mean.to(dtype=x.dtype, device=x.device)
        x = (x - mean) * self.img_range
        if self.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_before_upsample(x)
            x = self.conv_last(self.upsample(x))
        return x / self.img_range + mean


def check_frame_kwargs(
    name: str, resi_connection: str, upsampler: str, upscale: int, depths: Sequence[int], num_heads: Sequence[int]
) -> None:
    """Fail at construction where the official code would only fail (or silently misbehave) at forward."""
    if len(num_heads) < len(depths):
        raise ValueError(f"{name}: num_heads needs one entry per group ({len(depths)}), got {list(num_heads)}")
    if upsampler not in UPSAMPLERS:
        raise ValueError(
            f"{name}: upsampler must be 'pixelshuffle' (or '' for no reconstruction tail), got {upsampler!r}"
        )
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f"{name}: resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}")
    if upsampler == "pixelshuffle" and not (upscale == 3 or (upscale >= 1 and upscale & (upscale - 1) == 0)):
        raise ValueError(f"{name}: upscale must be a power of 2 or 3 for 'pixelshuffle', got {upscale}")


def _init_weights(module: nn.Module) -> None:
    """Official initialisation: truncated-normal (std 0.02) Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)
    elif isinstance(module, nn.LayerNorm):
        nn.init.constant_(module.bias, 0)
        nn.init.constant_(module.weight, 1.0)
