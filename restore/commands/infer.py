"""``restore infer`` / ``upscale`` / ``derain``: restore image files with a trained network.

    restore infer -i INPUT -o OUTDIR [--weights FILE | --onnx MODEL] [--opt network.yml] [--tile N|auto]
        [--tile-overlap N] [--precision fp32|bf16|fp16] [--device cpu|cuda|cuda:1] [--suffix S]
        [--ext png|same] [--recursive] [--overwrite] [--threads N]

INPUT is an image file or a folder. Without ``--opt`` the architecture is detected from the weights; without
``--weights`` the bundled x4 demo model (``restore.assets.DEFAULT_WEIGHTS``) is used, except by ``restore derain``.
Several GPUs: ``torchrun --nproc_per_node=N restore/infer.py ...`` gives each rank every N-th file and one device.
The device, the output folder and the precision are checked before the network is loaded or any file is read.
Files that this command would write (same ``--suffix`` and ``--ext``) are not taken as inputs when ``-o`` is,
or lies inside, ``-i``; temporary files of a killed run are removed from ``-o``.
Exit status: 0 all written or skipped, 1 some files failed (one stderr line each) or an input folder holds no
image, 2 unusable arguments, weights or options, 130 interrupted (Ctrl-C or SIGTERM; rerun to continue).
"""

from __future__ import annotations

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

from restore.commands.common import PARAM_KEY_HELP, CommandParser, load_weights
from restore.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from restore.engine.folder import FileJob, drop_own_outputs, plan_jobs, restore_file, scan_images, shard
from restore.engine.forward import PRECISIONS, check_precision, network_spec
from restore.engine.inference import DEFAULT_TILE_OVERLAP, VARIANTS, resolve_tile_overlap
from restore.engine.loading import (
    LoadedModel,
    ModelLoadError,
    check_device,
    network_options_from_yaml,
    task_of,
)
from restore.utils.files import probe_writable_folder, remove_stale_partials
from restore.utils.interrupt import EXIT_INTERRUPTED, sigterm_as_interrupt
from restore.utils.threads import THREADS_ENV, set_threads

__all__ = ["build_parser", "main"]

#: What each command does (the first line of its ``--help``), per ``task``.
DESCRIPTIONS = {
    None: "Restore image files (super-resolution or deraining) with any supported model; the architecture is "
    "detected from the weights. Without --weights the bundled x4 demo super-resolution model is used.",
    "upscale": "Upscale image files with a super-resolution model (HAT, DRCT, DLGSANet; the model must have "
    "scale > 1). Without --weights the bundled x4 demo model is used.",
    "derain": "Remove rain streaks from image files with a deraining model (DRSformer; scale 1). No deraining "
    "model is bundled, so --weights is required.",
}
EPILOG = (
    "Outputs go to the output folder, named like their inputs (plus --suffix); existing ones are skipped. "
    "Exit status: 0 done, 1 some files failed (one line each on stderr) or a folder holds no image, 2 unusable "
    "options or weights, 130 interrupted (rerun the same command to continue)."
)

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


def _at_least(minimum: int) -> type:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value!r}")
        return number

    parse.__name__ = f"integer >= {minimum}"
    return parse  # type: ignore[return-value]


def _suffix(value: str) -> str:
    if "/" in value or "\\" in value or (os.altsep and os.altsep in value) or value in (".", ".."):
        raise argparse.ArgumentTypeError(f"must not contain a path separator (outputs stay inside -o), got {value!r}")
    return value


def _default_weights_help(task: str | None) -> str:
    if task == "derain":
        return "checkpoint (.pth/.pt/.ckpt/.safetensors) of a deraining model (required: none is bundled)"
    from restore.assets import DEFAULT_WEIGHTS

    return f"checkpoint (.pth/.pt/.ckpt/.safetensors) (default: the bundled x4 demo model, {DEFAULT_WEIGHTS})"


def build_parser(
    prog: str = "restore infer", description: str | None = None, task: str | None = None
) -> argparse.ArgumentParser:
    """The command-line options; ``task`` (None, ``upscale``, ``derain``) selects the description and defaults."""
    parser = CommandParser(prog=prog, description=description or DESCRIPTIONS[task], epilog=EPILOG, exit_statuses="")
    parser.add_argument("-i", "--input", required=True, type=Path, help="image file or folder")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--weights", type=Path, default=None, help=_default_weights_help(task))
    parser.add_argument("--onnx", type=Path, help="run a model made by 'restore export' in ONNX Runtime (CPU) instead")
    parser.add_argument(
        "--opt", type=Path, help="YAML whose network_g builds the network (default: detected from the weights)"
    )
    parser.add_argument("--param-key", default=None, help=PARAM_KEY_HELP)
    parser.add_argument(
        "--tile", type=_tile, default=None, help="tile size in input pixels, or 'auto' (default: none, whole image)"
    )
    parser.add_argument("--tile-overlap", type=_at_least(0), default=None,
                        help=f"context pixels around each tile (default: {DEFAULT_TILE_OVERLAP}); by default at most "
                             "a quarter of the input side of a fixed-size ONNX model")  # fmt: skip
    parser.add_argument("--tile-batch-size", type=_at_least(1), default=1, help="tiles per forward pass")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="model_class",
                        help="official test-time path to follow")  # fmt: skip
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="arithmetic. bf16: autocast; pays on GPUs, and on CPUs with AVX512-BF16 or AMX (0.45-0.7x the "
             "fp32 CPU time for HAT, DRCT, DRSformer, not for DLGSANet; outputs 35-62 dB PSNR from fp32: "
             "docs/benchmarks.md); other CPUs emulate it, slower. "
             "fp16 is refused for HAT, DRCT, DRSformer",
    )  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available; per rank under torchrun)")
    parser.add_argument("--channels-last", action="store_true", default=None,
                        help="NHWC memory format (default: the network's own choice on CPU, e.g. DRSformer; "
                             "NCHW on GPU)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--suffix", type=_suffix, default="", help="appended to output file names (e.g. _x4)")
    parser.add_argument("--ext", choices=("png", "same"), default="png", help="output format: png or the input's own")
    parser.add_argument("--recursive", action="store_true", help="also process sub-folders (mirrored)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    parser.add_argument("--max-pixels", type=_at_least(1), default=DEFAULT_MAX_PIXELS,
                        help="refuse input images with more pixels (bombs)")  # fmt: skip
    parser.add_argument("--threads", type=_at_least(1), default=None,
                        help=f"CPU threads for torch and OpenCV (default: ${THREADS_ENV}, else the idle cores: usable "
                             "cores minus the busy ones)")  # fmt: skip
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
        device = check_device(requested)
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
    args = build_parser(prog, task=task).parse_args(argv)
    if args.weights is None and args.onnx is None and not _use_default_weights(args, prog, task):
        return 2
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(message)s")
    try:
        set_threads(args.threads)
        check_device(args.device)  # before torchrun set-up and before anything is loaded
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    progress = _Progress()
    try:
        with sigterm_as_interrupt():
            ranks = _Ranks()
            try:
                return _run(args, ranks, prog, task, progress)
            finally:
                ranks.close()
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted: {progress.written} written, {progress.left} left; "
            "rerun the same command to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


class _Progress:
    """Counts for the interruption line: files written so far and files of this rank not yet done."""

    def __init__(self) -> None:
        self.written = 0
        self.left = 0


def _scan(args: argparse.Namespace, prog: str) -> list[Path] | int:
    """Input files, or an exit status (1: an input folder without images, 2: no such input)."""
    try:
        scan = scan_images(args.input, args.recursive, exclude=args.output)
    except FileNotFoundError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    for link in scan.dangling:
        print(f"{link}: dangling symbolic link (points to {link.readlink()}), skipped", file=sys.stderr)
    if not scan.files and not scan.dangling:
        where = " or its sub-folders" if args.recursive else " (use --recursive for sub-folders)"
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        print(f"{prog}: error: {args.input}: no image files{where}; looked for {kinds}", file=sys.stderr)
        return 1
    return scan.files + scan.dangling


def _run(args: argparse.Namespace, ranks: _Ranks, prog: str, task: str | None, progress: _Progress) -> int:
    found = _scan(args, prog)
    if isinstance(found, int):
        return found
    progress.left = len(found)  # until the jobs of this rank are known
    made = [p for p in (args.output, *args.output.parents) if not p.exists()]  # folders the probe creates
    try:
        probe_writable_folder(args.output)  # before hours of compute, not after
    except OSError as err:
        print(f"{prog}: error: -o {err}", file=sys.stderr)
        status = 2
    else:
        status = _prepare_and_run(args, ranks, prog, task, progress, found)
    if status == 2:  # nothing was written: leave no empty output folder behind either
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
    return status


def _use_default_weights(args: argparse.Namespace, prog: str, task: str | None) -> bool:
    """Fill in the bundled model when no ``--weights`` was given; False (one error line printed) when that is
    not possible: ``derain`` (no deraining model is bundled) or an ``--opt`` of its own."""
    if task == "derain":
        reason = "no deraining model is bundled; pass a checkpoint such as DRSformer's"
        print(f"{prog}: error: --weights is required ({reason})", file=sys.stderr)
        return False
    if args.opt is not None:
        print(f"{prog}: error: --opt needs --weights (the bundled model has its own options)", file=sys.stderr)
        return False
    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS

    print(f"{prog}: no --weights given, using the bundled x4 demo model {DEFAULT_WEIGHTS}", file=sys.stderr)
    args.weights, args.opt = DEFAULT_WEIGHTS, DEFAULT_OPTIONS
    return True


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


def _prepare_and_run(
    args: argparse.Namespace, ranks: _Ranks, prog: str, task: str | None, progress: _Progress, found: list[Path]
) -> int:
    if ranks.rank == 0:
        for stale in remove_stale_partials(args.output, args.recursive):
            print(f"{prog}: removed {stale}, left by an interrupted run", file=sys.stderr)
    device = ranks.device(args.device)
    try:
        if args.onnx is not None:
            model = _onnx_model(args)
        else:
            network_g = network_options_from_yaml(args.opt) if args.opt else None
            model = load_weights(args.weights, args.param_key, network_g)
    except ModelLoadError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if task is not None:
        fits, why = TASK_CHECKS[task]
        if not fits(model.net):
            print(f"{prog}: error: {args.onnx or args.weights} ({model.network_g['type']}) {why}", file=sys.stderr)
            return 2
    spec = network_spec(model.net)
    try:
        check_precision(args.precision, spec, model.net)
    except ValueError as err:
        print(f"{prog}: error: --{err}", file=sys.stderr)
        return 2
    try:
        tile_overlap = resolve_tile_overlap(args.tile_overlap, spec.fixed_size)
    except ValueError as err:
        print(f"{prog}: error: --tile-overlap: {err}", file=sys.stderr)
        return 2
    net = model.net.to(device)
    options = dict(
        VARIANTS[args.variant],
        tile=args.tile,
        tile_overlap=tile_overlap,
        tile_batch_size=args.tile_batch_size,
        precision=args.precision,
        device=device,
        channels_last=args.channels_last,
        compile=args.compile,
        progress=False if args.no_progress else None,
    )
    jobs, own_outputs = drop_own_outputs(plan_jobs(found, args.input, args.output, args.suffix, args.ext))
    if own_outputs and ranks.rank == 0:
        print(
            f"{prog}: {len(own_outputs)} file(s) such as {own_outputs[0]} are outputs of this command "
            f"(suffix {args.suffix!r}, --ext {args.ext}); not taken as inputs",
            file=sys.stderr,
        )
    dangling = {path for path in found if not path.exists()}
    conflicts = _conflicts([job for job in jobs if job.source not in dangling])
    counts: Counter = Counter()
    start = time.perf_counter()
    mine = shard(jobs, ranks.rank, ranks.world)
    progress.left = len(mine)
    bar = tqdm(mine, desc=prog, unit="img", disable=True if args.no_progress else None, position=ranks.rank)
    for job in bar:
        if job.source in dangling:
            counts["failed"] += 1
        elif job.source in conflicts:
            tqdm.write(conflicts[job.source], file=sys.stderr)
            counts["failed"] += 1
        elif job.target.exists() and not args.overwrite:
            tqdm.write(f"{job.target}: exists, skipped (use --overwrite to replace)", file=sys.stderr)
            counts["skipped"] += 1
        else:
            try:
                restore_file(net, job, options, args.max_pixels)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # one bad file must not stop the folder: report it in one line and go on
                tqdm.write(_reason(err, job.source), file=sys.stderr)
                counts["failed"] += 1
            else:
                counts["written"] += 1
                progress.written += 1
        progress.left -= 1
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
