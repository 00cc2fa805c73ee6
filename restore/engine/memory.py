"""``tile="auto"``: the largest tile core that fits in the memory of the device that runs the network.

On CUDA one probe forward measures the peak bytes per input pixel (``max_memory_allocated``), which is close
to linear in the tile area for every network here (window attention, channel attention and TLC windows all
scale with the pixel count); the tile is sized to use half of the currently free memory. On CPU there is no
allocator statistic to read, so the per-pixel cost is estimated from the widest layer of the network and the
tile is sized to a quarter of the available RAM, capped at ``CPU_MAX_TILE`` (larger tiles do not run faster).
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from restore.engine.forward import NetworkSpec, TileForward

__all__ = ["CPU_MAX_TILE", "auto_tile_size", "available_ram_bytes"]

CPU_MAX_TILE = 512
MIN_TILE = 32
MAX_TILE = 4096
_CACHE_ATTR = "_engine_auto_tile"


def available_ram_bytes() -> int:
    """Available system memory in bytes (``MemAvailable`` on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _widest_layer(net: nn.Module) -> int:
    widths = [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]
    widths += [m.out_features for m in net.modules() if isinstance(m, nn.Linear)]
    return max(widths, default=64)


def _cpu_bytes_per_pixel(net: nn.Module, spec: NetworkSpec) -> float:
    """Rough float32 working set per input pixel: ~24 live maps of the widest layer plus the upsampling tail."""
    return 4.0 * (24 * _widest_layer(net) + 2 * 64 * spec.scale**2)


def _cuda_bytes_per_pixel(forward: TileForward, spec: NetworkSpec, channels: int) -> float:
    device = forward.device
    side = -(-128 // spec.pad_multiple) * spec.pad_multiple
    probe = torch.rand(1, channels, side, side)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    forward(probe, torch.device("cpu"))
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    return max(peak, 1) / side**2


def auto_tile_size(
    net: nn.Module, forward: TileForward, spec: NetworkSpec, context: int, batch: int, channels: int
) -> int:
    """Tile core (input pixels, a multiple of ``pad_multiple``) for ``tile="auto"``; cached per network/device."""
    key = (str(forward.device), forward.precision, context, batch)
    cache = net.__dict__.setdefault(_CACHE_ATTR, {})
    if key in cache:
        return cache[key]
    if forward.device.type == "cuda":
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(forward.device)
        per_pixel = _cuda_bytes_per_pixel(forward, spec, channels)
        budget, cap = 0.5 * free, MAX_TILE
    else:
        per_pixel = _cpu_bytes_per_pixel(net, spec)
        budget, cap = 0.25 * available_ram_bytes(), CPU_MAX_TILE
    region = math.sqrt(budget / (per_pixel * max(batch, 1)))
    multiple = spec.pad_multiple
    core = int((region - 2 * context) // multiple) * multiple
    core = max(min(core, cap), -(-MIN_TILE // multiple) * multiple)
    cache[key] = core
    return core
