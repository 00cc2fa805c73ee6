"""Tiny networks with the engine attributes, and the official test-time wrappers written out from the parity
README (section 3 of README_HAT_DRCT.md, section 2 of README_drsformer_dlgsanet.md) as independent references."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LocalSR(nn.Module):
    """conv3x3 -> tanh -> conv3x3 -> pixel shuffle: every output depends on a 5x5 input neighbourhood."""

    def __init__(self, scale: int = 2, pad_multiple: int = 8, width: int = 16, clamp_output: bool = False) -> None:
        super().__init__()
        self.scale, self.pad_multiple, self.clamp_output = scale, pad_multiple, clamp_output
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3 * scale * scale, 3, padding=1)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append(tuple(x.shape))
        if x.shape[2] % self.pad_multiple or x.shape[3] % self.pad_multiple:
            raise ValueError(f"input {tuple(x.shape)} is not a multiple of {self.pad_multiple}")
        return F.pixel_shuffle(self.tail(torch.tanh(self.head(x))), self.scale)


class PointwiseSR(nn.Module):
    """Nearest-neighbour upscaling of ``2x + 0.25``: any correct tiling reproduces it exactly."""

    def __init__(self, scale: int = 3, pad_multiple: int = 4) -> None:
        super().__init__()
        self.scale, self.pad_multiple = scale, pad_multiple
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(2 * x + 0.25, scale_factor=self.scale, mode="nearest") + self.dummy


class GlobalMix(nn.Module):
    """Adds the per-channel image mean: the output of a tile depends on the whole tile (like channel attention)."""

    def __init__(self, scale: int = 2, pad_multiple: int = 8) -> None:
        super().__init__()
        self.scale, self.pad_multiple = scale, pad_multiple
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.conv(x + x.mean(dim=(2, 3), keepdim=True)), self.scale)


class FakeOutOfMemory(nn.Module):
    """Wraps a network; raises ``torch.OutOfMemoryError`` when a batch exceeds ``max_pixels`` (N*H*W)."""

    def __init__(self, inner: nn.Module, max_pixels: int, error: type[Exception] = torch.OutOfMemoryError) -> None:
        super().__init__()
        self.inner, self.max_pixels, self.error = inner, max_pixels, error
        self.scale, self.pad_multiple = inner.scale, inner.pad_multiple
        self.shapes: list[tuple[int, ...]] = []
        self.refused = 0

    def forward(self, x: Tensor) -> Tensor:
        self.shapes.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.max_pixels:
            self.refused += 1
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return self.inner(x)


# ----------------------------------------------------------------------------- official wrappers (references)


def official_model_class(net: nn.Module, lq: Tensor, ws: int, scale: int, tile: dict | None = None) -> Tensor:
    """HAT/DRCT ``pre_process``, ``process`` or ``tile_process``, ``post_process`` (no clamp)."""
    _, _, h, w = lq.shape
    mod_pad_h = ws - h % ws if h % ws else 0
    mod_pad_w = ws - w % ws if w % ws else 0
    img = F.pad(lq, (0, mod_pad_w, 0, mod_pad_h), mode="reflect")
    with torch.no_grad():
        if tile is None:
            out = net(img)
        else:
            size, pad = tile["tile_size"], tile["tile_pad"]
            b, c, hp, wp = img.shape
            out = img.new_zeros(b, c, hp * scale, wp * scale)
            for y in range(math.ceil(hp / size)):
                for x in range(math.ceil(wp / size)):
                    x0, y0 = x * size, y * size
                    x1, y1 = min(x0 + size, wp), min(y0 + size, hp)
                    x0p, x1p = max(x0 - pad, 0), min(x1 + pad, wp)
                    y0p, y1p = max(y0 - pad, 0), min(y1 + pad, hp)
                    t = net(img[:, :, y0p:y1p, x0p:x1p])
                    ox, oy = (x0 - x0p) * scale, (y0 - y0p) * scale
                    out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = t[
                        :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
                    ]
    return out[:, :, : out.shape[2] - mod_pad_h * scale, : out.shape[3] - mod_pad_w * scale]


def official_sliding_average(net: nn.Module, img: Tensor, scale: int, tile: int, overlap: int, ws: int) -> Tensor:
    """``test()`` of DRCT ``inference.py`` (also DRSformer ``test.py --tile`` with scale 1)."""
    b, c, h, w = img.shape
    tile = min(tile, h, w)
    assert tile % ws == 0
    stride = tile - overlap
    h_idx = [*range(0, h - tile, stride), h - tile]
    w_idx = [*range(0, w - tile, stride), w - tile]
    acc = torch.zeros(b, c, h * scale, w * scale)
    count = torch.zeros_like(acc)
    with torch.no_grad():
        for hi in h_idx:
            for wi in w_idx:
                o = net(img[..., hi : hi + tile, wi : wi + tile])
                acc[..., hi * scale : (hi + tile) * scale, wi * scale : (wi + tile) * scale] += o
                count[..., hi * scale : (hi + tile) * scale, wi * scale : (wi + tile) * scale] += 1
    return acc / count


def official_inference_script(net: nn.Module, lq: Tensor, ws: int, scale: int, tile: int | None = None,
                              overlap: int = 32) -> Tensor:  # fmt: skip
    """DRCT ``inference.py``: symmetric padding with the always-extra window, whole or averaged tiles."""
    _, _, h, w = lq.shape
    h_pad = (h // ws + 1) * ws - h
    w_pad = (w // ws + 1) * ws - w
    img = torch.cat([lq, torch.flip(lq, [2])], 2)[:, :, : h + h_pad, :]
    img = torch.cat([img, torch.flip(img, [3])], 3)[:, :, :, : w + w_pad]
    if tile is None:
        with torch.no_grad():
            out = net(img)
    else:
        out = official_sliding_average(net, img, scale, tile, overlap, ws)
    return out[..., : h * scale, : w * scale]


def official_drsformer_test(net: nn.Module, lq: Tensor, tile: int | None = None, overlap: int = 32) -> Tensor:
    """DRSformer ``test.py``: reflect padding of non-multiples of 8, whole or averaged tiles, clamp, crop."""
    m = 8
    h, w = lq.shape[2:]
    padh = ((h + m) // m) * m - h if h % m else 0
    padw = ((w + m) // m) * m - w if w % m else 0
    img = F.pad(lq, (0, padw, 0, padh), "reflect")
    if tile is None:
        with torch.no_grad():
            out = net(img)
    else:
        out = official_sliding_average(net, img, 1, tile, overlap, m)
    return torch.clamp(out, 0, 1)[:, :, :h, :w]


def psnr(x: Tensor, ref: Tensor) -> float:
    """PSNR of ``x`` against ``ref`` with the reference's value range as the peak (outputs are not in [0, 1])."""
    mse = (x.double() - ref.double()).pow(2).mean().item()
    peak = (ref.max() - ref.min()).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)
