"""HAT: Hybrid Attention Transformer for image super-resolution.

Chen et al., "Activating More Pixels in Image Super-Resolution Transformer" (CVPR 2023) and
"HAT: Hybrid Attention Transformer for Image Restoration" (2023). Official code: XPixelGroup/HAT
@ 1638a9a822581657811867bf670717f8371fc3e5. Constructor kwargs and state-dict keys are identical to the
official ``HAT`` (strict loading of official checkpoints); attention runs through ``restore.ops``.

Structure: shallow conv -> RHAG x len(depths) -> norm -> conv -> pixel-shuffle reconstruction, where one
RHAG (residual hybrid attention group) is ``depth`` hybrid attention blocks (window attention plus a
channel-attention conv branch, shift alternating 0 / ws//2) and one overlapping cross-attention block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from restore.archs.layers.channel_attention import CAB
from restore.archs.layers.mlp import Mlp
from restore.archs.layers.patch_embed import image_to_tokens, tokens_to_image
from restore.archs.layers.swin_block import SwinBlock, effective_window, run_block
from restore.archs.layers.swin_sr_base import SwinSRBase, check_frame_kwargs
from restore.ops.window_attention import (
    overlap_window_size,
    overlapping_relative_position_index,
    overlapping_window_self_attention,
    relative_position_index,
)
from restore.utils.registry import ARCH_REGISTRY

__all__ = ["HAT", "PRESETS"]


class OverlappingCrossAttentionBlock(nn.Module):
    """OCAB: queries from ``ws`` windows attend to keys/values of enlarged ``ows`` windows, then an MLP.

    Keys (official order): ``relative_position_bias_table`` ``((ws+ows-1)**2, h)``, ``norm1``, ``qkv``, ``proj``,
    ``norm2``, ``mlp.fc1``, ``mlp.fc2``.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        overlap_ratio: float,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        mlp_ratio: float = 2.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"HAT OCAB: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.overlap_win_size = overlap_window_size(window_size, overlap_ratio)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        table_side = window_size + self.overlap_win_size - 1
        self.norm1 = norm_layer(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_side * table_side, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rp_index: torch.Tensor) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, L, C)``; ``rp_index`` is the model's ``(ws*ws, ows*ows)`` OCA index."""
        h, w = x_size
        b, length, c = x.shape
        out = overlapping_window_self_attention(
            self.norm1(x).view(b, h, w, c),
            self.qkv.weight,
            self.qkv.bias,
            self.proj.weight,
            self.proj.bias,
            num_heads=self.num_heads,
            window_size=self.window_size,
            overlap_window_size=self.overlap_win_size,
            rpb_table=self.relative_position_bias_table,
            rp_index=rp_index,
            scale=self.scale,
        )
        x = out.view(b, length, c) + x
        return x + self.mlp(self.norm2(x))


class HybridBlockStack(nn.Module):
    """``depth`` hybrid attention blocks followed by one OCAB (keys ``blocks.{i}``, ``overlap_attn``)."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        overlap_ratio: float,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        norm_layer: Callable[[int], nn.Module],
        use_checkpoint: bool,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.use_checkpoint = use_checkpoint
        blocks = []
        for i in range(depth):
            block_ws, shift = effective_window(input_resolution, window_size, 0 if i % 2 == 0 else window_size // 2)
            blocks.append(
                SwinBlock(
                    dim,
                    num_heads,
                    block_ws,
                    shift,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop,
                    attn_drop=attn_drop,
                    drop_path=drop_path[i],
                    norm_layer=norm_layer,
                    conv_block=CAB(dim, compress_ratio, squeeze_factor),
                    conv_scale=conv_scale,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.overlap_attn = OverlappingCrossAttentionBlock(
            dim, window_size, overlap_ratio, num_heads, qkv_bias, qk_scale, mlp_ratio, norm_layer
        )

    def forward(
        self, x: torch.Tensor, x_size: tuple[int, int], rpi_sa: torch.Tensor, rpi_oca: torch.Tensor
    ) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, L, C)``."""
        for block in self.blocks:
            x = run_block(block, x, x_size, rpi_sa, use_checkpoint=self.use_checkpoint)
        return run_block(self.overlap_attn, x, x_size, rpi_oca, use_checkpoint=self.use_checkpoint)


class HybridAttentionGroup(nn.Module):
    """RHAG: ``x + tokens(conv(image(stack(x))))`` (keys ``residual_group.*``, ``conv``)."""

    def __init__(self, residual_group: HybridBlockStack, resi_connection: str) -> None:
        super().__init__()
        dim = residual_group.dim
        self.residual_group = residual_group
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()

    def forward(
        self, x: torch.Tensor, x_size: tuple[int, int], rpi_sa: torch.Tensor, rpi_oca: torch.Tensor
    ) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, L, C)``."""
        y = self.residual_group(x, x_size, rpi_sa, rpi_oca)
        # ``x`` first: the sum takes its contiguous token layout instead of the conv's channels-first one, which
        # would otherwise make every later LayerNorm and residual add work on strided memory.
        return x + image_to_tokens(self.conv(tokens_to_image(y, x_size)))


@ARCH_REGISTRY.register()
class HAT(SwinSRBase):
    """Hybrid Attention Transformer; official kwargs and defaults (see the module docstring).

    ``forward``: ``(B, in_chans, H, W)`` -> ``(B, in_chans, H*scale, W*scale)`` with ``H``, ``W`` multiples
    of ``window_size``. ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate`` act in training only;
    ``use_checkpoint`` checkpoints every block in training; ``patch_size`` only divides ``img_size``.
    ``img_size`` matters only through ``img_size <= window_size`` (no shifted windows) and ``ape``.
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
    ) -> None:
        super().__init__()
        check_frame_kwargs("HAT", resi_connection, upsampler, upscale, depths, num_heads)
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.overlap_ratio = overlap_ratio
        self.pad_multiple = window_size
        ows = overlap_window_size(window_size, overlap_ratio)
        if (ows - window_size) % 2 != 0:
            raise ValueError(
                f"HAT: int(window_size * overlap_ratio) = {ows - window_size} must be even "
                f"(window_size={window_size}, overlap_ratio={overlap_ratio})"
            )
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.register_buffer("relative_position_index_OCA", overlapping_relative_position_index(window_size, ows))
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
        self.mlp_ratio = mlp_ratio
        self.num_layers = len(depths)
        block_window, _ = effective_window(self.patches_resolution, window_size, 0)
        # Official HAT keeps the model-level index buffers even when blocks shrink their window; such a
        # model cannot run (its forward fails); we construct it identically and refuse in forward.
        self._runnable = block_window == window_size
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList(
            HybridAttentionGroup(
                HybridBlockStack(
                    dim=embed_dim,
                    input_resolution=self.patches_resolution,
                    depth=depth,
                    num_heads=num_heads[i],
                    window_size=window_size,
                    compress_ratio=compress_ratio,
                    squeeze_factor=squeeze_factor,
                    conv_scale=conv_scale,
                    overlap_ratio=overlap_ratio,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                    norm_layer=norm_layer,
                    use_checkpoint=use_checkpoint,
                ),
                resi_connection,
            )
            for i, depth in enumerate(depths)
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
        """``(B, L, C)`` through every RHAG."""
        if not self._runnable:
            raise ValueError(
                f"HAT: img_size {self.patches_resolution} is smaller than window_size {self.window_size}; "
                "the official network cannot run this configuration"
            )
        for layer in self.layers:
            x = layer(x, x_size, self.relative_position_index_SA, self.relative_position_index_OCA)
        return x


_HAT_COMMON = dict(
    in_chans=3,
    img_size=64,
    window_size=16,
    conv_scale=0.01,
    overlap_ratio=0.5,
    img_range=1.0,
    mlp_ratio=2,
    upsampler="pixelshuffle",
    resi_connection="1conv",
)

#: Official ``network_g`` of each released configuration (without ``upscale``: 2, 3 or 4).
PRESETS: dict[str, dict[str, object]] = {
    "HAT-S": dict(_HAT_COMMON, compress_ratio=24, squeeze_factor=24, depths=[6] * 6, embed_dim=144, num_heads=[6] * 6),
    "HAT": dict(_HAT_COMMON, compress_ratio=3, squeeze_factor=30, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6),
    "HAT-L": dict(_HAT_COMMON, compress_ratio=3, squeeze_factor=30, depths=[6] * 12, embed_dim=180, num_heads=[6] * 12),
}
