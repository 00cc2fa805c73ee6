"""CPU thread count for whole commands: 1, 2, all cores and the default rule, idle and beside CPU-bound processes.

Workloads, each a fresh ``restore`` process timed from start to exit (imports included, as a user sees it):

* ``upscale``: ``restore upscale`` of one 512x512 photo crop with the bundled x4 DLGSANet;
* ``test``: ``restore test`` of the bundled model on four 64x64 LR crops of scikit-image photos (PSNR/SSIM).

Thread settings: ``1``, ``2``, ``all`` (``RESTORE_THREADS`` = that many; ``all`` = the usable cores) and
``default`` (no variable: the rule of ``restore.utils.threads.default_threads``). Background: 0, 1 and 2 extra
processes spinning on one core each, started before the command and stopped after it. Settings alternate within
every (workload, background) cell for ``--rounds`` rounds; medians are printed with the load average.

Usage:
    python scripts/bench_thread_rule.py                                  # everything, 1 round
    python scripts/bench_thread_rule.py --workloads upscale --background 0 1 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True:\n    pass\n"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _photo(name: str):
    import skimage

    return cv2.imread(str(Path(skimage.__file__).parent / "data" / name), cv2.IMREAD_COLOR)


def _prepare(folder: Path) -> dict[str, list[str]]:
    """Inputs and option file; returns each workload's command line."""
    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS

    photo = _photo("astronaut.png")
    cv2.imwrite(str(folder / "in512.png"), photo[:512, :512])
    gt_dir, lr_dir = folder / "GT", folder / "LR"
    gt_dir.mkdir()
    lr_dir.mkdir()
    for index, name in enumerate(("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")):
        gt = _photo(name)[index * 16 : index * 16 + 256, 32:288]
        cv2.imwrite(str(gt_dir / f"{index}.png"), gt)
        cv2.imwrite(str(lr_dir / f"{index}.png"), cv2.resize(gt, (64, 64), interpolation=cv2.INTER_CUBIC))
    network_g = yaml.safe_load(DEFAULT_OPTIONS.read_text())["network_g"]
    options = {
        "name": "threads", "scale": 4, "num_gpu": 0, "network_g": network_g,
        "datasets": {"test_1": {"name": "Mini", "type": "PairedImageDataset", "dataroot_gt": str(gt_dir),
                                "dataroot_lq": str(lr_dir), "io_backend": {"type": "disk"}}},
        "path": {"pretrain_network_g": str(DEFAULT_WEIGHTS), "results_root": str(folder / "results")},
        "val": {"save_img": False, "pbar": False, "metrics": {
            "psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True}}},
    }  # fmt: skip
    (folder / "test.yml").write_text(yaml.safe_dump(options, sort_keys=False))
    restore = [sys.executable, "-m", "restore.cli"]
    return {
        "upscale": [*restore, "upscale", "-i", str(folder / "in512.png"), "-o", str(folder / "out"), "--overwrite",
                    "--no-progress"],
        "test": [*restore, "test", "-opt", str(folder / "test.yml")],
    }  # fmt: skip


def _run(command: list[str], setting: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RESTORE_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    if setting != "default":
        env["RESTORE_THREADS"] = str(_cores() if setting == "all" else int(setting))
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["upscale", "test"], choices=["upscale", "test"])
    parser.add_argument("--settings", nargs="+", default=["1", "2", "all", "default"])
    parser.add_argument("--background", nargs="+", type=int, default=[0, 1, 2], help="spinning processes")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"usable cores: {_cores()}; load {os.getloadavg()[0]:.2f}; {time.strftime('%H:%M:%S')}")
    with tempfile.TemporaryDirectory() as tmp:
        commands = _prepare(Path(tmp))
        for workload in args.workloads:
            for background in args.background:
                spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(background)]
                try:
                    times: dict[str, list[float]] = {s: [] for s in args.settings}
                    load_in = os.getloadavg()[0]
                    for round_ in range(args.rounds):
                        order = args.settings if round_ % 2 == 0 else args.settings[::-1]
                        for setting in order:
                            times[setting].append(_run(commands[workload], setting))
                finally:
                    for spinner in spinners:
                        spinner.kill()
                        spinner.wait()
                base = statistics.median(times[args.settings[0]])
                cells = "  ".join(
                    f"{s}: {statistics.median(t):6.2f} s ({statistics.median(t) / base:.2f})" for s, t in times.items()
                )
                print(f"{workload:<8} bg={background}  {cells}  load {load_in:.2f} -> {os.getloadavg()[0]:.2f}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
