"""DRCT: Dense-residual-connected Transformer for image super-resolution.

Hsu et al., "DRCT: Saving Image Super-resolution away from Information Bottleneck" (CVPRW 2024).
Official code: ming053l/DRCT @ c0a8b51e69241cf7f8ae598053235ff498517935. Constructor kwargs and
state-dict keys are identical to the official ``DRCT`` (strict loading of official checkpoints); attention runs
through ``restore.ops``.

Structure: shallow conv -> RDG x len(depths) -> norm -> conv -> pixel-shuffle reconstruction. One RDG
(residual dense group) is five Swin blocks; block ``k`` sees the concatenation of the group input and the
``gc``-channel outputs of the blocks before it (dense connections), each squeezed by a 1x1 conv.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.layers.mlp import on_token_rows
from restore.archs.layers.swin_block import SwinBlock, effective_window, run_block
from restore.archs.layers.swin_sr_base import SwinSRBase, check_frame_kwargs
from restore.ops.window_attention import shift_mask
from restore.utils.registry import ARCH_REGISTRY

__all__ = ["DRCT", "PRESETS", "dense_block_dims"]

BLOCKS_PER_GROUP = 5
DENSE_SLOPE = 0.2  # LeakyReLU slope after adjust1..adjust4
GROUP_RESIDUAL_SCALE = 0.2


def dense_block_dims(dim: int, gc: int, num_heads: int) -> list[tuple[int, int]]:
    """``(channels, heads)`` of the five blocks of one RDG: ``dim + k*gc`` channels and
    ``num_heads - (channels % num_heads)`` heads (block 1 keeps ``num_heads``)."""
    out = []
    for k in range(BLOCKS_PER_GROUP):
        channels = dim + k * gc
        out.append((channels, num_heads if k == 0 else num_heads - channels % num_heads))
    return out


class DenseSwinBlock(SwinBlock):
    """DRCT's Swin block: stores its own ``attn.relative_position_index`` and, when shifted, the shift mask
    ``attn_mask`` ``(nW, N, N)`` for the training resolution (a persistent buffer of the official layout).

    The forward pass builds the mask for the actual input size inside the attention op; at the training
    resolution that equals the stored buffer (both are the official ``calculate_mask``).
    """

    def __init__(
        self,
        input_resolution: tuple[int, int],
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: float,
        norm_layer: Callable[[int], nn.Module],
    ) -> None:
        super().__init__(
            dim,
            num_heads,
            window_size,
            shift_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            drop=drop,
            attn_drop=attn_drop,
            drop_path=drop_path,
            norm_layer=norm_layer,
            store_index=True,
        )
        if self.shift_size > 0:
            h, w = input_resolution
            if h % self.window_size or w % self.window_size:
                raise ValueError(
                    f"DRCT: img_size {h} x {w} must be a multiple of window_size {self.window_size} "
                    "when shifted windows are used"
                )
            self.register_buffer("attn_mask", shift_mask(h, w, self.window_size, self.shift_size))


class DenseResidualGroup(nn.Module):
    """RDG: keys ``swin1, adjust1, ..., swin5, adjust5`` (official order).

    ``x_k = lrelu(adjust_k(swin_k(cat(x, x_1, ..., x_{k-1}))))`` for k = 1..4 (``gc`` channels each),
    ``x_5 = adjust5(swin5(cat(x, x_1, ..., x_4)))`` (``dim`` channels), output ``0.2 * x_5 + x``.
    The 1x1 ``adjust`` convolutions act per token and run as matrix products on the token layout.
    """

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: float,
        norm_layer: Callable[[int], nn.Module],
        gc: int,
        use_checkpoint: bool,
    ) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        for k, (channels, heads) in enumerate(dense_block_dims(dim, gc, num_heads), start=1):
            if channels % heads != 0:
                raise ValueError(
                    f"DRCT: block swin{k} has {channels} channels, not divisible by its {heads} heads "
                    f"(embed_dim={dim}, gc={gc}, num_heads={num_heads})"
                )
            block_ws, shift = effective_window(input_resolution, window_size, window_size // 2 if k % 2 == 0 else 0)
            block = DenseSwinBlock(
                input_resolution,
                dim=channels,
                num_heads=heads,
                window_size=block_ws,
                shift_size=shift,
                mlp_ratio=mlp_ratio if k <= 3 else 1,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path,
                norm_layer=norm_layer,
            )
            setattr(self, f"swin{k}", block)
            setattr(self, f"adjust{k}", nn.Conv2d(channels, gc if k < BLOCKS_PER_GROUP else dim, 1))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """``(B, L, dim)`` -> ``(B, L, dim)``."""
        features = [x]
        for k in range(1, BLOCKS_PER_GROUP + 1):
            block: SwinBlock = getattr(self, f"swin{k}")
            adjust: nn.Conv2d = getattr(self, f"adjust{k}")
            inputs = x if k == 1 else torch.cat(features, dim=-1)
            y = run_block(block, inputs, x_size, use_checkpoint=self.use_checkpoint)
            y = on_token_rows(partial(F.linear, weight=adjust.weight.flatten(1), bias=adjust.bias), y)
            if k < BLOCKS_PER_GROUP:
                y = F.leaky_relu(y, DENSE_SLOPE)
            features.append(y)
        return features[-1] * GROUP_RESIDUAL_SCALE + x


@ARCH_REGISTRY.register()
class DRCT(SwinSRBase):
    """Dense-residual-connected Transformer; official kwargs and defaults (see the module docstring).

    ``forward``: ``(B, in_chans, H, W)`` -> ``(B, in_chans, H*scale, W*scale)`` with ``H``, ``W`` multiples of
    the window size. Only ``len(depths)`` matters (five blocks per group); ``compress_ratio``,
    ``squeeze_factor``, ``conv_scale`` and ``overlap_ratio`` are accepted for option-file compatibility and
    unused, as in the official code. Every block of group ``i`` uses drop-path rate
    ``linspace(0, drop_path_rate, sum(depths))[sum(depths[:i])]`` (official behaviour).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        patch_size: int | Sequence[int] = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        gc: int = 32,
    ) -> None:
        super().__init__()
        check_frame_kwargs("DRCT", resi_connection, upsampler, upscale, depths, num_heads)
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.overlap_ratio = overlap_ratio
        self.gc = gc
        self._build_head(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            ape=ape,
            patch_norm=patch_norm,
            drop_rate=drop_rate,
            norm_layer=norm_layer,
            img_range=img_range,
            upscale=upscale,
            upsampler=upsampler,
            use_checkpoint=use_checkpoint,
        )
        # Blocks shrink their window to the training resolution when it fits in one window.
        self.pad_multiple, _ = effective_window(self.patches_resolution, window_size, 0)
        self.mlp_ratio = mlp_ratio
        self.num_layers = len(depths)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList(
            DenseResidualGroup(
                dim=embed_dim,
                input_resolution=self.patches_resolution,
                num_heads=num_heads[i],
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rates[sum(depths[:i])] if depths[i] > 0 else 0.0,
                norm_layer=norm_layer,
                gc=gc,
                use_checkpoint=use_checkpoint,
            )
            for i in range(len(depths))
        )
        self._build_tail(
            in_chans=in_chans,
            embed_dim=embed_dim,
            norm_layer=norm_layer,
            resi_connection=resi_connection,
            upscale=upscale,
            upsampler=upsampler,
        )

    def forward_body(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """``(B, L, C)`` through every RDG."""
        for layer in self.layers:
            x = layer(x, x_size)
        return x


_DRCT_COMMON = dict(
    in_chans=3,
    img_size=64,
    window_size=16,
    compress_ratio=3,
    squeeze_factor=30,
    conv_scale=0.01,
    overlap_ratio=0.5,
    img_range=1.0,
    embed_dim=180,
    mlp_ratio=2,
    upsampler="pixelshuffle",
    resi_connection="1conv",
)

#: Official ``network_g`` of each released configuration (without ``upscale``: 2, 3 or 4; ``gc`` = default 32).
PRESETS: dict[str, dict[str, object]] = {
    "DRCT": dict(_DRCT_COMMON, depths=[6] * 6, num_heads=[6] * 6),
    "DRCT-L": dict(_DRCT_COMMON, depths=[6] * 12, num_heads=[6] * 12),
}
