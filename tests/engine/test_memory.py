"""Working memory of a tiled run is bounded by the tile, not the image.

CPU: a fresh process reports how much its peak resident memory (``VmHWM``) rises during each ``infer``;
the output and input buffers necessarily grow with the image, everything else must not.
CUDA: ``max_memory_allocated`` with the image on the CPU and the tiles on the GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_nets import LocalSR

from restore.engine import infer

REPO_ROOT = Path(__file__).resolve().parents[2]

_PEAK_SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from engine_nets import LocalSR
from restore.engine import infer
torch.set_num_threads(1)
torch.manual_seed(0)
net = LocalSR(scale=2, pad_multiple=8, width=48)
infer(net, torch.rand(1, 3, 16, 16))  # warm up the allocator and kernels
def peak():  # VmHWM: ru_maxrss would carry the parent's peak across fork + exec
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
report, last = {{}}, peak()
for name, side, tile in [("tiled_small", 192, 48), ("tiled_large", 576, 48), ("untiled_large", 576, None)]:
    out = infer(net, torch.rand(1, 3, side, side), tile=tile, tile_overlap=16)
    report[name], last = peak() - last, peak()
    report[name + "_out"] = out.numel() * 4 / 2**20
    del out
print(json.dumps(report))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak resident size from Linux /proc")
def test_tiled_peak_memory_stays_flat_on_cpu() -> None:
    """One process, runs in order of growing need; each figure is the rise of the peak over the previous one."""
    script = _PEAK_SCRIPT.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    mb = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"peak rise (MiB): tiled 192^2 {mb['tiled_small']:.1f}, tiled 576^2 {mb['tiled_large']:.1f} "
          f"(output {mb['tiled_large_out']:.1f}), untiled 576^2 {mb['untiled_large']:.1f}")  # fmt: skip
    buffers = 3 * mb["tiled_large_out"]  # output accumulator, padded input, final copy: generous
    assert mb["tiled_large"] < buffers + 16
    # The measurement can tell: the whole-image activations of the same network need far more.
    assert mb["untiled_large"] > 3 * mb["tiled_large"]


@pytest.mark.cuda
def test_tiled_peak_memory_stays_flat_on_cuda() -> None:
    torch.manual_seed(0)
    net = LocalSR(scale=2, pad_multiple=8, width=64).cuda()
    peaks = []
    for side in (256, 1024):
        lq = torch.rand(1, 3, side, side)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = infer(net, lq, tile=64, tile_overlap=16)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        assert out.device.type == "cpu"
    print(f"CUDA peak (MiB): 256^2 {peaks[0] / 2**20:.1f}, 1024^2 {peaks[1] / 2**20:.1f}")
    assert peaks[1] < 1.25 * peaks[0] + (1 << 20)
