"""Restore image files with a trained network.

    python restore/infer.py -i INPUT -o OUTDIR --weights FILE|--onnx MODEL [--opt network.yml] [--tile N|auto]
        [--tile-overlap N] [--precision fp32|bf16|fp16] [--device cpu|cuda|cuda:1] [--suffix S]
        [--ext png|same] [--recursive] [--overwrite]

INPUT is an image file or a folder. Without ``--opt`` the architecture is detected from the weights. Several
GPUs: ``torchrun --nproc_per_node=N restore/infer.py ...`` gives each rank every N-th file and one device.
Exit status: 0 all written or skipped, 1 some files failed (one stderr line each), 2 unusable arguments,
weights or options.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: import the package from this checkout, not from restore/ itself
    import pathlib
    import sys

    _HERE = pathlib.Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from restore.data.image_io import DEFAULT_MAX_PIXELS
from restore.engine.folder import FileJob, list_images, plan_jobs, restore_file, shard
from restore.engine.forward import PRECISIONS
from restore.engine.inference import VARIANTS
from restore.engine.loading import (
    LoadedModel,
    ModelLoadError,
    default_device,
    load_model,
    network_options_from_yaml,
    task_of,
)

__all__ = ["build_parser", "main"]

#: What ``restore upscale`` / ``restore derain`` accept, as (check, message when the model does not fit).
TASK_CHECKS = {
    "upscale": (lambda net: int(net.scale) > 1, "is a scale-1 model, not an upscaler; use 'restore infer'"),
    "derain": (lambda net: task_of(net) == "derain", "is not a deraining model; use 'restore infer'"),
}


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}") from None
    if tile < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}")
    return tile


def build_parser(prog: str = "restore infer", description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description or __doc__.split("\n\n")[0])
    parser.add_argument("-i", "--input", required=True, type=Path, help="image file or folder")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--weights", type=Path, help="checkpoint (.pth/.pt/.safetensors); this or --onnx is required")
    parser.add_argument("--onnx", type=Path, help="run a model made by 'restore export' in ONNX Runtime (CPU) instead")
    parser.add_argument("--opt", type=Path, help="YAML whose network_g builds the network (default: detect)")
    parser.add_argument("--param-key", default="params_ema", help="checkpoint key to load (falls back to params)")
    parser.add_argument("--tile", type=_tile, default=None, help="tile size in input pixels, or 'auto' (default: none)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="context pixels around each tile (default 32)")
    parser.add_argument("--tile-batch-size", type=int, default=1, help="tiles per forward pass (default 1)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="model_class",
                        help="official test-time path to follow (default model_class)")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default), bf16 or fp16")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available; per rank under torchrun)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--suffix", default="", help="appended to output file names (e.g. _x4)")
    parser.add_argument("--ext", choices=("png", "same"), default="png", help="output format (default png)")
    parser.add_argument("--recursive", action="store_true", help="also process sub-folders (mirrored)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger input images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


class _Ranks:
    """This process's place under torchrun (rank 0 of 1 otherwise); sums counters over ranks."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("gloo")  # only small counters travel between ranks

    def device(self, requested: str | None) -> torch.device:
        device = torch.device(requested) if requested else default_device()
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank if self.world > 1 else torch.cuda.current_device())
        return device

    def total(self, counts: Counter) -> Counter:
        if self.world == 1:
            return counts
        keys = ("written", "skipped", "failed")
        values = torch.tensor([counts[k] for k in keys], dtype=torch.int64)
        torch.distributed.all_reduce(values)
        return Counter(dict(zip(keys, values.tolist())))

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _reason(err: BaseException, source: Path) -> str:
    text = (str(err).splitlines() or [""])[0] or type(err).__name__
    return text if text.startswith(str(source)) else f"{source}: {text}"


def _conflicts(jobs: Sequence[FileJob]) -> dict[Path, str]:
    """Jobs that cannot run: output would replace the input, or two inputs map to one output."""
    bad, owner = {}, {}
    for job in jobs:
        if job.target.resolve() == job.source.resolve():
            bad[job.source] = f"{job.source}: the output would replace the input; choose another -o or a --suffix"
        elif job.target in owner:
            bad[job.source] = f"{job.source}: output {job.target} is already produced from {owner[job.target]}"
        else:
            owner[job.target] = job.source
    return bad


def main(argv: Sequence[str] | None = None, *, prog: str = "restore infer", task: str | None = None) -> int:
    """Parse ``argv`` and restore the files; returns the exit status (see the module docstring)."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(message)s")
    ranks = _Ranks()
    try:
        return _run(args, ranks, prog, task)
    finally:
        ranks.close()


def _onnx_model(args: argparse.Namespace) -> LoadedModel:
    """The ``--onnx`` model as a network of the engine; options fixed at export time are refused."""
    from restore.export.runtime import OnnxNetwork, OnnxSetupError

    if args.weights is not None or args.opt is not None:
        raise ModelLoadError("--onnx replaces --weights and --opt; give only one model")
    if args.precision != "fp32" or args.compile or args.channels_last:
        raise ModelLoadError("--onnx: precision and memory format are fixed at export; drop --precision/--compile/"
                             "--channels-last")  # fmt: skip
    try:
        net = OnnxNetwork(args.onnx)
    except OnnxSetupError as err:
        raise ModelLoadError(str(err)) from None
    return LoadedModel(net=net, network_g={"type": net.metadata["type"], **net.metadata["network_g"]}, detected=False)


def _run(args: argparse.Namespace, ranks: _Ranks, prog: str, task: str | None) -> int:
    try:
        if args.onnx is not None:
            model = _onnx_model(args)
        elif args.weights is None:
            raise ModelLoadError("--weights (a checkpoint) or --onnx (an exported model) is required")
        else:
            network_g = network_options_from_yaml(args.opt) if args.opt else None
            model = load_model(args.weights, network_g, param_key=args.param_key)
        files = list_images(args.input, args.recursive)
    except (ModelLoadError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if task is not None:
        fits, why = TASK_CHECKS[task]
        if not fits(model.net):
            print(f"{prog}: error: {args.weights} ({model.network_g['type']}) {why}", file=sys.stderr)
            return 2
    device = ranks.device(args.device)
    net = model.net.to(device)
    options = dict(
        VARIANTS[args.variant],
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        tile_batch_size=args.tile_batch_size,
        precision=args.precision,
        device=device,
        channels_last=args.channels_last,
        compile=args.compile,
        progress=False if args.no_progress else None,
    )
    jobs = plan_jobs(files, args.input, args.output, args.suffix, args.ext)
    conflicts = _conflicts(jobs)
    counts: Counter = Counter()
    start = time.perf_counter()
    mine = shard(jobs, ranks.rank, ranks.world)
    bar = tqdm(mine, desc=prog, unit="img", disable=True if args.no_progress else None, position=ranks.rank)
    for job in bar:
        if job.source in conflicts:
            tqdm.write(conflicts[job.source], file=sys.stderr)
            counts["failed"] += 1
            continue
        if job.target.exists() and not args.overwrite:
            tqdm.write(f"{job.target}: exists, skipped (use --overwrite to replace)", file=sys.stderr)
            counts["skipped"] += 1
            continue
        try:
            restore_file(net, job, options, args.max_pixels)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # one bad file must not stop the folder: report it in one line and go on
            tqdm.write(_reason(err, job.source), file=sys.stderr)
            counts["failed"] += 1
        else:
            counts["written"] += 1
    counts = ranks.total(counts)
    if ranks.rank == 0:
        seconds = time.perf_counter() - start
        print(
            f"{prog}: {counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed "
            f"of {len(jobs)} file(s) in {seconds:.1f} s -> {args.output}"
        )
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
