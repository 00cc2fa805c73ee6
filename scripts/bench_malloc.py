"""CPU benchmark: glibc's default allocator settings vs ``restore.utils.malloc.keep_freed_memory``.

Each (case, setting) runs in a fresh process (the settings cannot be undone within one): build the network (random
weights, eval mode, the engine's CPU memory format), one untimed forward, then ``--forwards`` timed ones. Reported
per process: best wall time of a forward, user and system CPU seconds per forward, minor page faults per forward,
peak resident set (``VmHWM``, MiB) and the resident set after the last forward (memory the process keeps).
Settings: ``default`` (glibc's), ``keep`` (``keep_freed_memory``) and ``thp`` (glibc's, with PyTorch's
``THP_MEM_ALLOC_ENABLE=1``: large tensors on transparent huge pages, one fault per 2 MiB).
Settings alternate across ``--rounds`` rounds, so both see the same machine load. ``tiled`` cases run the engine's
``infer`` on a larger image with ``--tile``.

Usage:
    python scripts/bench_malloc.py                              # DRSformer 256 and 512, tiled 1024 (tile 256)
    python scripts/bench_malloc.py --cases DRSformer-256 --rounds 3 --forwards 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (network, image side, tile core or None)
CASES = {
    "DRSformer-128": ("DRSformer", 128, None),
    "DRSformer-256": ("DRSformer", 256, None),
    "DRSformer-512": ("DRSformer", 512, None),
    "DRSformer-1024-tiled": ("DRSformer", 1024, 256),
    "HAT-S_x4-128": ("HAT-S_x4", 128, None),
}
SETTINGS = ("default", "keep", "thp")


def _network(name: str):
    from restore.archs import build_network

    if name == "DRSformer":
        from restore.archs.drsformer import PRESETS

        return build_network({"type": "DRSformer", **PRESETS["Rain200H"]})
    from restore.archs.hat import PRESETS

    return build_network({"type": "HAT", "upscale": 4, **PRESETS["HAT-S"]})


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _child(case: str, setting: str, forwards: int, threads: int) -> None:
    if setting == "thp":  # PyTorch's own switch: 2 MiB-aligned large blocks, madvise(MADV_HUGEPAGE); read at its
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # first allocation, so set before any tensor exists
    import torch

    from restore.engine import infer
    from restore.utils.malloc import keep_freed_memory

    applied = keep_freed_memory() if setting == "keep" else False
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    name, side, tile = CASES[case]
    net = _network(name).eval()
    lq = torch.rand(1, 3, side, side)
    infer(net, lq, tile=tile, progress=False)  # warm-up, layout conversion
    walls = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(forwards):
        start = time.perf_counter()
        infer(net, lq, tile=tile, progress=False)
        walls.append(time.perf_counter() - start)
    end = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "applied": applied,
        "wall": min(walls),
        "user": (end.ru_utime - usage.ru_utime) / forwards,
        "sys": (end.ru_stime - usage.ru_stime) / forwards,
        "faults": (end.ru_minflt - usage.ru_minflt) / forwards,
        "peak_mib": _status_mib("VmHWM"),
        "after_mib": _status_mib("VmRSS"),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=["DRSformer-256", "DRSformer-512", "DRSformer-1024-tiled"],
                        help=f"cases (default: the three DRSformer sizes); known: {', '.join(CASES)}")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (one process per setting each)")
    parser.add_argument("--forwards", type=int, default=2, help="timed forwards per process, after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child[0], args._child[1], args.forwards, args.threads)
        return
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    print(f"{args.threads} thread(s), {args.forwards} forward(s) per process, {args.rounds} round(s); "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'case':<22} {'setting':<8} {'wall s':>7} {'user s':>7} {'sys s':>7} {'faults':>9} {'peak MiB':>9} "
          f"{'after MiB':>9}")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RESTORE_MALLOC", None)
    for case in args.cases:
        for round_ in range(args.rounds):
            for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
                cmd = [sys.executable, __file__, "--_child", case, setting, "--forwards", str(args.forwards),
                       "--threads", str(args.threads)]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
                r = json.loads(out.strip().splitlines()[-1])
                print(f"{case:<22} {setting:<8} {r['wall']:>7.2f} {r['user']:>7.2f} {r['sys']:>7.2f} "
                      f"{r['faults']:>9.0f} {r['peak_mib']:>9.0f} {r['after_mib']:>9.0f}", flush=True)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
