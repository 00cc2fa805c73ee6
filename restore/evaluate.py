"""Benchmark runner behind ``restore test -opt options/test/X.yml`` (:mod:`restore.commands.test`).

For every dataset under ``datasets:`` the network restores each LQ image (whole image, or tiled when the option
file has a ``tile:`` block), the result is quantised to 8 bits like a saved PNG, and the ``val.metrics`` are
computed against the ground truth (GT is cropped to exactly ``scale`` times the LQ size by the dataset). It
prints one line per dataset, then a table (datasets x metrics), and writes to ``path.results_root``
(``results/<name>/`` by default):

- ``visualization/<dataset>/<image>_<suffix>.png`` when ``val.save_img`` (suffix: ``val.suffix``, else ``name``);
- ``metrics.csv`` (one row per image, then one ``average`` row per dataset) and ``metrics.json``, unless no
  metric could be computed (e.g. LQ-only folders with only full-reference metrics);
- ``index.html`` when ``val.report``: sortable per-dataset tables linking to the images, with a slider;
- ``test_<timestamp>.log`` with everything printed.

As in BasicSR: the weights come from ``path.param_key_g`` (default ``params``; an absent key falls back to
``params``), ``manual_seed`` seeds Python, NumPy and torch before the network is built, and an existing results
folder of the same ``name`` is renamed to ``<name>_archived_<time>`` first. An option file without
``path.pretrain_network_g`` is refused unless ``--allow-random-weights`` is given; ``precision: fp16`` is refused
before any checkpoint is read for networks that declare float16 unsafe.
"""

from __future__ import annotations

import csv
import datetime
import inspect
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from restore.checkpoint import checkpoint_option_problem
from restore.utils.errors import error_line
from restore.utils.options import OptionsError

__all__ = [
    "DatasetResult", "ImageFailed", "MetricSpec", "UnusableOptions", "check_options", "error_line", "format_table",
    "preflight", "run_benchmark",
]  # fmt: skip


class ImageFailed(RuntimeError):
    """An image could not be restored on this machine (out of memory even after re-tiling); the message is one
    line that names the image."""


#: Errors whose one-line message is the whole story (missing files, bad options, size mismatches, an image that
#: does not fit in memory).
USER_ERRORS = (OSError, ValueError, KeyError, ImageFailed)

#: ``param_key_g`` when the option file names none, and the key an absent one falls back to (BasicSR).
DEFAULT_PARAM_KEY = "params"


class UnusableOptions(OptionsError):
    """The option file asks for something that cannot give a meaningful benchmark (exit status 2); ``problems``
    lists every problem found, one line each."""


@dataclass(frozen=True)
class MetricSpec:
    """One entry of ``val.metrics``: the option name (``psnr``), the registered function and its keyword options."""

    name: str
    type: str
    fn: Callable[..., float]
    options: dict[str, Any]
    better: str = "higher"

    @property
    def needs_reference(self) -> bool:
        """Full-reference metrics take the GT image as ``img2``; no-reference ones (NIQE) do not."""
        return "img2" in inspect.signature(self.fn).parameters

    @property
    def effective_options(self) -> dict[str, Any]:
        """Every keyword option the metric runs with: the function's defaults, overridden by the option file."""
        params = inspect.signature(self.fn).parameters.values()
        defaults = {p.name: p.default for p in params if p.default is not p.empty and p.name not in ("img", "img2")}
        return {**defaults, **self.options}


@dataclass
class DatasetResult:
    """Per-image metric values of one dataset and their averages."""

    name: str
    metrics: list[str]
    images: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tiled: int = 0  # images that ran in more than one tile (the others fit in one tile and ran whole)

    @property
    def averages(self) -> dict[str, float]:
        return {m: float(np.mean([img[m] for img in self.images])) for m in self.metrics if self.images}


class _Log:
    """Print to stdout and append to the run's log file."""

    def __init__(self, handle: TextIO | None) -> None:
        self.handle = handle

    def __call__(self, message: str = "") -> None:
        print(message, flush=True)
        if self.handle is not None:
            self.handle.write(message + "\n")
            self.handle.flush()


def metric_specs(opt: dict[str, Any]) -> list[MetricSpec]:
    """Resolve ``val.metrics`` against ``METRIC_REGISTRY`` (unknown types fail before any image is processed)."""
    from restore.metrics import metric_direction
    from restore.utils.registry import METRIC_REGISTRY

    specs = []
    for name, entry in ((opt.get("val") or {}).get("metrics") or {}).items():
        entry = dict(entry)
        kind = entry.pop("type", None)
        if kind is None:
            raise KeyError(f"val.metrics.{name}.type: missing")
        try:
            fn = METRIC_REGISTRY.get(kind)
        except KeyError as err:
            raise KeyError(f"val.metrics.{name}.type: {err.args[0]}") from None
        better = metric_direction(kind, entry.pop("better", None))
        specs.append(MetricSpec(name=name, type=kind, fn=fn, options=entry, better=better))
    return specs


def choose_device(opt: dict[str, Any], device: str | None = None) -> torch.device:
    """``device`` if given; else CPU when ``num_gpu: 0`` or no CUDA device, otherwise ``cuda``."""
    if device is not None:
        return torch.device(device)
    if opt.get("num_gpu") == 0 or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def check_options(opt: dict[str, Any], allow_random_weights: bool = False, source: str | None = None) -> None:
    """Refuse, before anything is read or written, option files that cannot give a meaningful benchmark.

    Raises:
        UnusableOptions: no ``network_g``, no ``path.pretrain_network_g`` (unless ``allow_random_weights``), and/or
            ``precision: fp16`` for a ``network_g`` type whose class declares ``supports_fp16 = False``.
    """
    problems = _option_problems(opt, allow_random_weights, source or str(opt.get("name")))
    if problems:
        raise UnusableOptions(problems)


def _option_problems(opt: dict[str, Any], allow_random_weights: bool, where: str) -> list[str]:
    from restore.archs import ARCH_REGISTRY  # importing restore.archs registers the architectures

    network = opt.get("network_g") or {}
    if not network:
        return [f"{where}: network_g: missing (the network to evaluate)"]
    problems = []
    if not (opt.get("path") or {}).get("pretrain_network_g") and not allow_random_weights:
        problems.append(
            f"{where}: path.pretrain_network_g is empty: refusing to benchmark a randomly initialised "
            f"{network.get('type')}; set it to a checkpoint (or pass --allow-random-weights)"
        )
    cls = ARCH_REGISTRY.get(network["type"]) if network.get("type") in ARCH_REGISTRY else None
    if (opt.get("precision") or "fp32") == "fp16" and getattr(cls, "supports_fp16", True) is False:
        problems.append(
            f"{where}: precision 'fp16' refused for {cls.__name__}: its activations exceed the float16 range "
            "with trained weights (inf/NaN outputs); use 'bf16' or 'fp32'"
        )
    return problems


def preflight(opt: dict[str, Any], allow_random_weights: bool = False, source: str | None = None) -> list[str]:
    """Every reason the benchmark cannot run, one line each, found without building the network or reading images.

    Checks: ``network_g`` and its weights (``path.pretrain_network_g`` set and a file, unless
    ``allow_random_weights``; ``precision: fp16`` for networks that refuse it), and every dataset (its type, its
    folders and the GT/LQ pairing, by listing the files).
    """
    problems = _option_problems(opt, allow_random_weights, source or str(opt.get("name")))
    problem = checkpoint_option_problem((opt.get("path") or {}).get("pretrain_network_g"), "path.pretrain_network_g")
    if problem:
        problems.append(problem)
    if not opt.get("datasets"):
        problems.append(f"{source or opt.get('name')}: datasets: no test dataset given")
    for key, dataset_opt in (opt.get("datasets") or {}).items():
        try:
            build_datasets({**opt, "datasets": {key: dataset_opt}})
        except USER_ERRORS as err:
            problems.append(error_line(err))
    return problems


def select_params(checkpoint: Any, param_key: str | None, log: Callable[[str], None]) -> tuple[Any, str | None]:
    """BasicSR's choice of weights in a checkpoint: ``param_key`` if present, else ``params`` (with its log line).

    Returns the chosen sub-dict (or the checkpoint itself when it holds neither key) and the key used.
    """
    if not param_key or not isinstance(checkpoint, dict):
        return checkpoint, None
    if param_key not in checkpoint and DEFAULT_PARAM_KEY in checkpoint:
        log(f"Loading: {param_key} does not exist, use {DEFAULT_PARAM_KEY}.")
        param_key = DEFAULT_PARAM_KEY
    if param_key in checkpoint:
        return checkpoint[param_key], param_key
    return checkpoint, None


def param_key_line(requested: str, used: str | None) -> str:
    """The log's words on the weights' key after ``Loading <Net> model from <file>``: BasicSR's
    ``, with param key: [params].`` when a key was found; else what was looked for and what was loaded."""
    if used is not None:
        return f", with param key: [{used}]."
    looked = requested if requested == DEFAULT_PARAM_KEY else f"{requested}, then {DEFAULT_PARAM_KEY}"
    return f": looked for param key {looked}, found neither, so the file's top level is loaded as the state dict."


def build_model(opt: dict[str, Any], log: Callable[[str], None]) -> nn.Module:
    """``network_g`` built and loaded from ``path.pretrain_network_g`` (``param_key_g``, ``strict_load_g``).

    Without a checkpoint the network keeps its random initialisation (only reached through
    ``--allow-random-weights``; see :func:`check_options`).
    """
    from restore.archs import build_network
    from restore.checkpoint import canonicalize, load_network, read_checkpoint

    if not opt.get("network_g"):
        raise KeyError(f"{opt.get('name')}: network_g: missing (the network to evaluate)")
    paths = opt.get("path") or {}
    checkpoint = paths.get("pretrain_network_g")
    if not checkpoint:
        net = build_network(opt["network_g"])
        log(f"warning: path.pretrain_network_g is not set: evaluating randomly initialised {type(net).__name__}")
        return net
    problem = checkpoint_option_problem(checkpoint, "path.pretrain_network_g")
    if problem:
        raise FileNotFoundError(problem)
    requested = paths.get("param_key_g") or DEFAULT_PARAM_KEY
    raw, key = select_params(read_checkpoint(checkpoint), requested, log)
    state = canonicalize(raw, None, source=str(checkpoint))
    net = build_network(opt["network_g"], state_dict=state)
    report = load_network(net, state, strict=paths.get("strict_load_g", True), param_key=None)
    log(f"Loading {type(net).__name__} model from {checkpoint}{param_key_line(requested, key)}")
    log(f"loaded {checkpoint} ({report.summary()})")
    return net


def build_datasets(opt: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(name, dataset)`` for every entry of ``datasets:``, built through ``DATASET_REGISTRY``."""
    import restore.data.datasets  # noqa: F401  (registers PairedImageDataset, SingleImageDataset, ...)
    from restore.utils.registry import DATASET_REGISTRY

    datasets = []
    for key, dataset_opt in (opt.get("datasets") or {}).items():
        dataset_opt = dict(dataset_opt)
        dataset_opt.setdefault("phase", "test")
        dataset_opt.setdefault("scale", opt.get("scale", 1))
        name = str(dataset_opt.get("name") or key)
        kind = dataset_opt.get("type")
        try:
            cls = DATASET_REGISTRY.get(kind)
        except KeyError as err:
            raise KeyError(f"datasets.{key}.type: {err.args[0]}") from None
        datasets.append((name, cls(dataset_opt)))
    if not datasets:
        raise ValueError(f"{opt.get('name')}: datasets: no test dataset given")
    return datasets


def _engine_options(opt: dict[str, Any]) -> dict[str, Any]:
    tile = opt.get("tile") or {}
    return {
        "tile": tile.get("tile_size"),
        "tile_overlap": 32 if tile.get("tile_pad") is None else tile["tile_pad"],
        "tile_batch_size": tile.get("tile_batch_size") or 1,
        "precision": opt.get("precision") or "fp32",
    }


def runs_tiled(net: nn.Module, height: int, width: int, engine: dict[str, Any]) -> bool:
    """Whether :func:`restore.engine.infer` splits an ``height x width`` input into several tiles.

    A tile block at least as large as the (padded) image runs the whole image in one forward pass.
    """
    from restore.engine import network_spec, pad_amount
    from restore.engine.tiling import plan_blended_axis

    if not engine["tile"]:
        return False
    spec = network_spec(net)
    return any(
        len(plan_blended_axis(n + pad_amount(n, spec.pad_multiple, "reflect"), engine["tile"],
                              engine["tile_overlap"], spec.pad_multiple, spec.scale)) > 1
        for n in (height, width)
    )  # fmt: skip


def evaluate_dataset(
    net: nn.Module,
    name: str,
    dataset: Any,
    specs: Sequence[MetricSpec],
    opt: dict[str, Any],
    log: Callable[[str], None],
) -> DatasetResult:
    """Restore every image of ``dataset``, compute the metrics, save images if asked; returns the values."""
    from restore.data.benchmark import image_stem, tensor_to_uint8, write_uint8
    from restore.engine import infer
    from restore.engine.forward import is_out_of_memory

    val = opt.get("val") or {}
    engine = _engine_options(opt)
    image_dir = Path(opt["path"]["visualization"]) / name
    suffix = val.get("suffix") or opt.get("name")
    result = DatasetResult(name=name, metrics=[])
    active: list[MetricSpec] | None = None
    start = time.perf_counter()
    for index in tqdm(range(len(dataset)), desc=name, unit="img", disable=not val.get("pbar", True), leave=False):
        item = dataset[index]
        if active is None:  # every item of a dataset has GT, or none has
            active = [s for s in specs if "gt" in item or not s.needs_reference]
            result.metrics = [s.name for s in active]
            if len(active) < len(specs):
                skipped = ", ".join(s.name for s in specs if s not in active)
                log(f"{name}: no ground truth, skipping {skipped}")
        result.tiled += runs_tiled(net, *item["lq"].shape[-2:], engine)
        try:
            sr = tensor_to_uint8(infer(net, item["lq"][None], **engine))
        except RuntimeError as err:  # a machine limit, not a bug: one line naming the image (other errors propagate)
            if not is_out_of_memory(err):
                raise
            reason = (str(err).splitlines() or ["out of memory"])[0]
            raise ImageFailed(f"{item['lq_path']}: {reason}") from None
        stem = image_stem(item["lq_path"])
        row: dict[str, Any] = {"image": stem, "lq_path": item["lq_path"]}
        gt = None
        if "gt" in item:
            gt = tensor_to_uint8(item["gt"])
            row["gt_path"] = item["gt_path"]
            if gt.shape != sr.shape:
                raise ValueError(
                    f"{item['lq_path']}: restored image is {sr.shape[0]}x{sr.shape[1]} but GT {item['gt_path']} is "
                    f"{gt.shape[0]}x{gt.shape[1]} (HxW); does the network's scale match scale: {opt.get('scale')}?"
                )
        for spec in active:
            value = (
                spec.fn(img=sr, img2=gt, **spec.options) if spec.needs_reference else spec.fn(img=sr, **spec.options)
            )
            row[spec.name] = float(value)
        if val.get("save_img"):
            write_uint8(image_dir / f"{stem}_{suffix}.png", sr)
        result.images.append(row)
    result.seconds = time.perf_counter() - start
    return result


def protocol_line(specs: Sequence[MetricSpec], engine: dict[str, Any]) -> str:
    """How the numbers were measured, in one line: per metric its crop border, channel (RGB, Y, Y rounded to
    uint8) and SSIM downsampling; then tiling and precision. E.g. ``psnr: crop border 4, Y channel (unrounded);
    ...; whole images (no tiling); precision fp32``."""
    parts = []
    for spec in specs:
        o = spec.options
        bits = [f"crop border {o.get('crop_border', 0)}"]
        if o.get("test_y_channel"):
            bits.append("Y channel (y_channel_uint8: rounded to uint8)" if o.get("y_channel_uint8")
                        else "Y channel (unrounded, y_channel_uint8 false)")  # fmt: skip
        else:
            bits.append("RGB")
        if "ssim" in spec.type.lower():
            bits.append("auto_downsample (f x f blocks first)" if o.get("auto_downsample") else "full size")
        parts.append(f"{spec.name}: {', '.join(bits)}")
    if engine["tile"]:
        parts.append(f"tiled: tile_size {engine['tile']}, tile_pad {engine['tile_overlap']}")
    else:
        parts.append("whole images (no tiling)")
    parts.append(f"precision {engine['precision']}")
    return "; ".join(parts)


def dataset_line(result: DatasetResult, engine: dict[str, Any] | None = None) -> str:
    """``Set5: 5 images, 1.2 s | psnr 32.1234 | ssim 0.9012``; with a tile block, how many images ran tiled."""
    parts = [f"{result.name}: {len(result.images)} images, {result.seconds:.1f} s"]
    if engine and engine["tile"]:
        parts.append(f"tiled {result.tiled}, whole {len(result.images) - result.tiled}")
    parts += [f"{m} {v:.4f}" for m, v in result.averages.items()]
    return " | ".join(parts)


def format_table(results: Sequence[DatasetResult], specs: Sequence[MetricSpec]) -> str:
    """Markdown table, one row per dataset and one column per metric (``-`` where a metric was not computed)."""
    header = ["dataset", *[f"{s.name} ({'↑' if s.better == 'higher' else '↓'})" for s in specs]]
    rows = [[r.name, *[f"{r.averages[s.name]:.4f}" if s.name in r.averages else "-" for s in specs]] for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def write_reports(results: Sequence[DatasetResult], specs: Sequence[MetricSpec], opt: dict[str, Any]) -> None:
    """``metrics.csv`` and ``metrics.json`` in ``path.results_root`` (datasets without any metric are left out)."""
    root = Path(opt["path"]["results_root"])
    results = [r for r in results if r.metrics]
    root.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in specs]
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "image", *names])
        for r in results:
            for img in r.images:
                writer.writerow([r.name, img["image"], *[repr(img[m]) if m in img else "" for m in names]])
            averages = r.averages
            if averages:
                writer.writerow([r.name, "average", *[repr(averages[m]) if m in averages else "" for m in names]])
    report = {
        "name": opt.get("name"),
        "network_g": (opt.get("network_g") or {}).get("type"),
        "pretrain_network_g": (opt.get("path") or {}).get("pretrain_network_g"),
        "precision": opt.get("precision"),
        "tile": opt.get("tile"),
        "metrics": {s.name: {"type": s.type, "better": s.better, **s.effective_options} for s in specs},
        "datasets": {
            r.name: {
                "count": len(r.images),
                "tiled": r.tiled,
                "seconds": r.seconds,
                "average": r.averages,
                "images": r.images,
            }
            for r in results
        },
    }
    (root / "metrics.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def archive_results(root: Path, stamp: str) -> Path | None:
    """Rename an existing, non-empty ``root`` to ``<root>_archived_<stamp>`` (BasicSR); returns the new path."""
    if not root.is_dir() or not any(root.iterdir()):
        return None
    target = root.with_name(f"{root.name}_archived_{stamp}")
    n = 1
    while target.exists():
        target = root.with_name(f"{root.name}_archived_{stamp}_{n}")
        n += 1
    root.rename(target)
    return target


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) as BasicSR's ``set_random_seed`` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def run_benchmark(
    opt: dict[str, Any],
    net: nn.Module | None = None,
    device: str | torch.device | None = None,
    *,
    allow_random_weights: bool = False,
    source: str | None = None,
) -> list[DatasetResult]:
    """Evaluate ``net`` (default: built and loaded from ``opt``) on every dataset of a loaded option dict.

    Args:
        opt: options from :func:`restore.utils.options.load_options` (``is_train=False``).
        net: an already built network (then ``network_g`` and ``path.pretrain_network_g`` are not used).
        device: where the network runs; default from ``num_gpu`` and CUDA availability.
        allow_random_weights: evaluate ``network_g`` randomly initialised when no checkpoint is given.
        source: the option file, for messages.

    Returns:
        One :class:`DatasetResult` per dataset, in option-file order.

    Raises:
        UnusableOptions: every problem that :func:`preflight` finds (raised before the results folder is touched).
    """
    problems = preflight(opt, allow_random_weights, source) if net is None else []
    if problems:
        raise UnusableOptions(problems)
    root = Path(opt["path"]["results_root"])
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    archived = archive_results(root, stamp)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"test_{stamp}.log", "w", encoding="utf-8") as handle:
        log = _Log(handle)
        if archived is not None:
            log(f"{root} already exists: previous results moved to {archived}")
        try:
            return _run(opt, net, device, root, log)
        except USER_ERRORS as err:
            handle.write(f"error: {error_line(err)}\n")
            raise


def _run(
    opt: dict[str, Any], net: nn.Module | None, device: str | torch.device | None, root: Path, log: _Log
) -> list[DatasetResult]:
    specs = metric_specs(opt)
    for key in opt.get("skipped_datasets") or []:
        log(f"datasets.{key}: null, skipped")
    datasets = build_datasets(opt)
    for key, dataset_opt in (opt.get("datasets") or {}).items():
        if dataset_opt.get("dataroot_gt") and not dataset_opt.get("dataroot_lq") and dataset_opt.get("scale", 1) > 1:
            log(f"datasets.{key}: no dataroot_lq: the LQ images are made from the GT by MATLAB bicubic "
                f"downscaling by {dataset_opt['scale']}")  # fmt: skip
    run_device = choose_device(opt, None if device is None else str(device))
    seed = opt.get("manual_seed")
    if seed is not None:
        seed_everything(seed)
    if net is None:
        net = build_model(opt, log)
    net = net.to(run_device).eval()
    engine = _engine_options(opt)
    tiling = (f"tile_size {engine['tile']} with tile_pad {engine['tile_overlap']} (images that fit in one tile run "
              "whole)" if engine["tile"] else "whole images (no tiling)")  # fmt: skip
    seeded = "" if seed is None else f", manual_seed {seed}"
    log(f"{opt.get('name')}: {type(net).__name__} on {run_device}, precision {engine['precision']}, {tiling}{seeded}")
    log(f"results and log go to {root}")
    results = []
    for name, dataset in datasets:
        result = evaluate_dataset(net, name, dataset, specs, opt, log)
        log(dataset_line(result, engine))
        results.append(result)
    if (opt.get("val") or {}).get("report"):
        from restore.analysis.report import write_test_report

        log(f"report: {write_test_report(results, specs, opt, protocol_line(specs, engine))}")
    if any(r.metrics for r in results):
        write_reports(results, specs, opt)
        log("")
        log(format_table(results, specs))
    else:
        log("nothing to measure (no metric applies to these datasets): no metrics.csv/metrics.json written")
    log(f"results in {root}")
    return results
