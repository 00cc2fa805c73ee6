"""BasicSR-format option files: load, override, validate against a typed schema, resolve paths.

The schema below lists every key that the official HAT, DRCT, DLGSANet and DRSformer option files use, plus
our own additions (``precision``, ``tile``, training switches). Unknown keys are errors that name the key path
and suggest the closest valid key; wrong types are errors that name the expected type. ``network_g`` is
checked against the registered architecture's constructor (names and annotated types), so a misspelt kwarg
cannot be silently dropped. A dataset set to null (``test_2: ~``) is skipped; its key is listed in
``skipped_datasets``. Relative paths (data roots, pretrained weights) resolve against the current directory, and
``experiments/`` and ``results/`` are created under it.

Example:
    >>> opt = load_options("options/test/HAT_SRx4.yml", force_yml=["val:save_img=true"])
    >>> opt["network_g"]["type"]
    'HAT'
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ACCEPTED_UNUSED", "REPO_ROOT", "OptionsError", "load_options", "parse_force_yml", "validate_options"]

#: The checkout that holds ``restore/`` (official option files are written to be run from here).
REPO_ROOT = Path(__file__).resolve().parents[2]

_MISSING = object()


class OptionsError(ValueError):
    """Problems in an option file: one line each, naming the file and key path (``problems``; ``str`` joins them).

    Validation does not stop at the first problem: every unknown key, wrong type and bad block is listed.
    """

    def __init__(self, message: str | Sequence[str]) -> None:
        self.problems = [message] if isinstance(message, str) else list(message)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Value:
    """A leaf: accepted Python types, optional default and choices. ``None`` (YAML ``~``) is always allowed."""

    types: tuple[type, ...]
    default: Any = _MISSING
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Section:
    """A mapping with known keys. ``each`` validates every key not in ``fields`` (named sub-sections such as
    ``datasets.train``); ``free`` accepts any further key unchecked (kwargs passed through to a constructor)."""

    fields: Mapping[str, Value | Section] = field(default_factory=dict)
    each: Value | Section | None = None
    free: bool = False


INT, FLOAT, BOOL, STR, LIST, DICT = (int,), (float,), (bool,), (str,), (list,), (dict,)
NUM = (int, float)


def _v(types: tuple[type, ...], default: Any = _MISSING, choices: tuple[Any, ...] | None = None) -> Value:
    return Value(types, default, choices)


_TYPED_KWARGS = Section({"type": _v(STR)}, free=True)  # optimizers, schedulers, losses: kwargs of a registered type

_DEGRADATION_KEYS = (  # Real-ESRGAN style on-the-fly degradations (Real_HAT / Real-DRCT option files)
    "blur_kernel_size", "kernel_list", "kernel_prob", "sinc_prob", "blur_sigma", "betag_range", "betap_range",
    "blur_kernel_size2", "kernel_list2", "kernel_prob2", "sinc_prob2", "blur_sigma2", "betag_range2", "betap_range2",
    "final_sinc_prob",
)  # fmt: skip

DATASET = Section(
    {
        "name": _v(STR),
        "type": _v(STR),
        "phase": _v(STR),
        "scale": _v(INT),
        "dataroot_gt": _v(STR),
        "dataroot_lq": _v(STR),
        "meta_info_file": _v(STR),
        "meta_info": _v(STR),  # RealESRGANDataset's file list (it ignores meta_info_file, as officially)
        "filename_tmpl": _v(STR, "{}"),
        "io_backend": Section({"type": _v(STR, "disk"), "db_paths": _v((str, list)), "client_keys": _v((str, list))}),
        "gt_size": _v(INT),
        "use_hflip": _v(BOOL),
        "use_rot": _v(BOOL),
        "use_shuffle": _v(BOOL),
        "num_worker_per_gpu": _v(INT),
        "batch_size_per_gpu": _v(INT),
        "dataset_enlarge_ratio": _v(INT),
        "prefetch_mode": _v(STR, choices=("cpu", "cuda")),
        "pin_memory": _v(BOOL),
        "color": _v(STR),
        # DRSformer's progressive training keys
        "geometric_augs": _v(BOOL),
        "mini_batch_sizes": _v(LIST),
        "iters": _v(LIST),
        "gt_sizes": _v(LIST),
        **{k: _v((int, float, list, str)) for k in _DEGRADATION_KEYS},
    }
)

_METRIC = Section(
    {
        "type": _v(STR),
        "crop_border": _v(INT, 0),
        "test_y_channel": _v(BOOL),  # no default filled in: not every metric takes it (NIQE does not)
        "y_channel_uint8": _v(BOOL),
        "y_channel_float64": _v(BOOL),
        "better": _v(STR, None, choices=("higher", "lower")),  # None: the metric's own direction
    },
    free=True,  # the other keys are checked against the metric function's parameters (restore.utils.option_blocks)
)

_REAL_ESRGAN_TOP = (
    "gt_usm", "queue_size", "resize_prob", "resize_range", "gaussian_noise_prob", "noise_range", "poisson_scale_range",
    "gray_noise_prob", "jpeg_range", "second_blur_prob", "resize_prob2", "resize_range2", "gaussian_noise_prob2",
    "noise_range2", "poisson_scale_range2", "gray_noise_prob2", "jpeg_range2", "l1_gt_usm", "percep_gt_usm",
    "gan_gt_usm", "gt_size",
)  # fmt: skip

SCHEMA = Section(
    {
        "name": _v(STR),
        "model_type": _v(STR, "SRModel"),
        "scale": _v(INT, 1),
        "num_gpu": _v((int, str), "auto"),
        "manual_seed": _v(INT),
        "is_train": _v(BOOL),
        "precision": _v(STR, "fp32", choices=("fp32", "bf16", "fp16")),
        "high_order_degradation": _v(BOOL),
        "tile": Section({"tile_size": _v(INT), "tile_pad": _v(INT, 32), "tile_batch_size": _v(INT, 1)}),
        "datasets": Section(each=DATASET),
        "network_g": Section({"type": _v(STR)}, free=True),
        "network_d": Section({"type": _v(STR)}, free=True),
        "path": Section(
            {
                "pretrain_network_g": _v(STR, None),
                "param_key_g": _v(STR, "params"),  # BasicSR: loads params unless told otherwise
                "strict_load_g": _v(BOOL, True),
                "resume_state": _v(STR, None),
                "pretrain_network_d": _v(STR, None),
                "param_key_d": _v(STR, "params"),
                "strict_load_d": _v(BOOL, True),
                "root": _v(STR),
                "experiments_root": _v(STR),
                "results_root": _v(STR),
                "models": _v(STR),
                "training_states": _v(STR),
                "log": _v(STR),
                "visualization": _v(STR),
            }
        ),
        "train": Section(
            {
                "ema_decay": _v(NUM, 0.0),
                "optim_g": _TYPED_KWARGS,
                "optim_d": _TYPED_KWARGS,
                "scheduler": _TYPED_KWARGS,
                "total_iter": _v(INT),
                "warmup_iter": _v(INT, -1),
                "use_grad_clip": _v(BOOL, False),
                "grad_clip_norm": _v(NUM, 0.01),
                "accumulate_grad_batches": _v(INT, 1),
                "amp": _v(STR, "fp32", choices=("fp32", "bf16", "fp16")),
                "channels_last": _v(BOOL, None),
                "compile": _v(BOOL, False),
                "pixel_opt": _TYPED_KWARGS,
                "perceptual_opt": _TYPED_KWARGS,
                "fft_opt": _TYPED_KWARGS,
                "gan_opt": _TYPED_KWARGS,
                "net_d_iters": _v(INT),
                "net_d_init_iters": _v(INT),
                "mixing_augs": Section({"mixup": _v(BOOL), "mixup_beta": _v(NUM), "use_identity": _v(BOOL)}),
            }
        ),
        "val": Section(
            {
                "val_freq": _v(INT),
                "save_img": _v(BOOL, False),
                "suffix": _v(STR, None),
                "pbar": _v(BOOL, True),
                "report": _v(BOOL, False),
                "metrics": Section(each=_METRIC),
                "rgb2bgr": _v(BOOL),
                "use_image": _v(BOOL),
                "max_minibatch": _v(INT),
                "window_size": _v(INT),
            }
        ),
        "logger": Section(
            {
                "print_freq": _v(INT, 100),
                "save_checkpoint_freq": _v(INT),
                "use_tb_logger": _v(BOOL, False),
                "wandb": Section({"project": _v(STR), "resume_id": _v(STR), "entity": _v(STR)}),
            }
        ),
        "dist_params": Section({"backend": _v(STR), "port": _v(INT)}),
        "skipped_datasets": _v(LIST),  # filled by load_options: keys of datasets set to null
        **{k: _v((int, float, bool, list)) for k in _REAL_ESRGAN_TOP},
    }
)

#: Keys that official option files carry and that ``restore`` accepts without using, with the reason (``*`` stands
#: for any dataset). Every other key is read by the code that its block feeds.
ACCEPTED_UNUSED: dict[str, str] = {
    "is_train": "set by the command itself (restore train / restore test)",
    "dist_params.backend": "torchrun's environment and --launcher choose the process group",
    "dist_params.port": "torchrun's environment and --launcher choose the process group",
    "path.root": "set by the command itself (the current directory)",
    "datasets.*.blur_kernel_size": "the official RealESRGANDataset ignores it too: kernel sides are drawn from 7..21",
    "datasets.*.blur_kernel_size2": "the official RealESRGANDataset ignores it too: kernel sides are drawn from 7..21",
    "datasets.*.meta_info_file": "RealESRGANDataset reads meta_info instead (PairedImageDataset and "
    "SingleImageDataset do read it)",
    "datasets.*.io_backend.db_paths": "only the disk backend is supported (io_backend.type: disk)",
    "datasets.*.io_backend.client_keys": "only the disk backend is supported (io_backend.type: disk)",
    "val.rgb2bgr": "images are always saved and scored as 8-bit BGR PNGs, as BasicSR does by default",
    "val.use_image": "metrics are always computed on the 8-bit images that would be saved",
    "val.max_minibatch": "validation restores one image at a time (a tile block bounds the memory)",
    "val.window_size": "padding follows the network's own window size",
}

# Option keys holding file-system paths, resolved against the current directory (or ``root``) when relative.
_PATH_KEYS = {
    "path": ("pretrain_network_g", "resume_state", "pretrain_network_d"),
    "dataset": ("dataroot_gt", "dataroot_lq", "meta_info_file", "meta_info"),
}


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _coerce(value: Any, spec: Value, where: str) -> Any:
    """Check ``value`` against a leaf spec; YAML conveniences are accepted (``1`` for a float, ``5e3`` for an int)."""
    if value is None:
        return None
    types = spec.types
    if isinstance(value, bool) and bool not in types:
        raise OptionsError(f"{where}: expected {_type_name(types)}, got bool {value!r}")
    if isinstance(value, types):
        out = value
    elif float in types and isinstance(value, int):
        out = float(value)
    elif int in types and isinstance(value, float) and value.is_integer():
        out = int(value)  # BasicSR writes frequencies as ``!!float 5e3``
    elif tuple(t for t in types if t in NUM) == NUM and isinstance(value, str):
        out = _number_from_string(value, types, where)  # YAML 1.1 reads ``1e-4`` (no dot) as a string
    else:
        raise OptionsError(f"{where}: expected {_type_name(types)}, got {type(value).__name__} {value!r}")
    if spec.choices is not None and out not in spec.choices:
        raise OptionsError(f"{where}: expected one of {', '.join(map(repr, spec.choices))}, got {out!r}")
    return out


def _number_from_string(value: str, types: tuple[type, ...], where: str) -> float | int:
    try:
        number = float(value)
    except ValueError:
        raise OptionsError(f"{where}: expected {_type_name(types)}, got str {value!r}") from None
    return int(number) if int in types and float not in types and number.is_integer() else number


def _unknown_key(key: str, known: Sequence[str], where: str) -> OptionsError:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(known))}"
    return OptionsError(f"{where}: unknown key{hint}")


def _validate(node: Any, spec: Value | Section, where: str, problems: list[str]) -> Any:
    """``node`` checked against ``spec``; every problem found is appended to ``problems`` (the node is skipped)."""
    if isinstance(spec, Value):
        try:
            return _coerce(node, spec, where)
        except OptionsError as err:
            problems.append(str(err))
            return node
    if node is None:
        return None
    if not isinstance(node, dict):
        problems.append(f"{where}: expected a mapping, got {type(node).__name__} {node!r}")
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{where}.{key}" if where else str(key)
        if key in spec.fields:
            out[key] = _validate(value, spec.fields[key], path, problems)
        elif spec.each is not None:
            out[key] = _validate(value, spec.each, path, problems)
        elif spec.free:
            out[key] = value
        else:
            problems.append(str(_unknown_key(key, list(spec.fields), path)))
    return out


def _fill_defaults(node: dict[str, Any], spec: Section) -> None:
    for key, sub in spec.fields.items():
        if isinstance(sub, Value) and sub.default is not _MISSING and key not in node:
            node[key] = copy.deepcopy(sub.default)
        elif isinstance(sub, Section) and isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub)
    if isinstance(spec.each, Section):
        for key, value in node.items():
            if key not in spec.fields and isinstance(value, dict):
                _fill_defaults(value, spec.each)


def _resolve(value: str | None, root: Path) -> str | None:
    if not isinstance(value, str):  # None, or a wrong type already reported
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())


def _check_network(opt: dict[str, Any], source: str) -> list[str]:
    from restore.archs import ARCH_REGISTRY, network_kwargs_problems  # lazy: options load without torch models
    from restore.utils.option_blocks import missing_type

    problems = []
    for key in ("network_g", "network_d"):
        network = opt.get(key)
        if not isinstance(network, dict) or not network:
            continue
        if "type" not in network:
            problems.append(missing_type(network, f"{source}: {key}", ARCH_REGISTRY.keys()))
            continue
        try:
            problems += network_kwargs_problems(network, where=f"{source}: {key}")
        except KeyError as err:
            problems.append(f"{source}: {key}.type: {err.args[0]}")
    return problems


def validate_options(opt: Mapping[str, Any], source: str = "<options>", *, check_network: bool = True) -> dict:
    """Validate a BasicSR-format option dict and return a copy with defaults filled in.

    Every key is checked against what reads it: the schema below, the registered architecture's constructor
    (``network_g``/``network_d``), and for the typed blocks (``val.metrics.*``, ``train.*_opt``, ``optim_g``,
    ``optim_d``, ``scheduler``) the parameters of the function or class their ``type`` names. Keys that official
    files carry and ``restore`` does not need are accepted (:data:`ACCEPTED_UNUSED`).

    Raises:
        OptionsError: every unknown key (with the closest valid key), wrong type (with the expected type),
            unknown ``type`` of a block, or ``network_g`` kwarg that the architecture does not take; one line each.
    """
    from restore.utils.option_blocks import check_blocks

    if not isinstance(opt, Mapping):
        raise OptionsError(f"{source}: expected a mapping at the top level, got {type(opt).__name__}")
    problems: list[str] = []
    out = _validate(dict(opt), SCHEMA, "", problems)
    problems = [f"{source}: {p}" for p in problems]
    problems += check_blocks(out, source)
    if check_network:
        problems += _check_network(out, source)
    if problems:
        raise OptionsError(problems)
    out.setdefault("path", {})
    _fill_defaults(out, SCHEMA)
    return out


def parse_force_yml(items: Sequence[str]) -> list[tuple[list[str], Any]]:
    """Parse BasicSR ``--force_yml`` items: ``"train:total_iter=1000"`` -> ``(["train", "total_iter"], 1000)``."""
    parsed = []
    for item in items:
        if "=" not in item:
            raise OptionsError(f"--force_yml {item!r}: expected KEY:SUBKEY=VALUE")
        keys, raw = item.split("=", 1)
        parsed.append((keys.split(":"), yaml.safe_load(raw)))
    return parsed


def _apply_force_yml(opt: dict[str, Any], items: Sequence[str]) -> None:
    for item, (keys, value) in zip(items, parse_force_yml(items)):
        if not all(keys):
            raise OptionsError(f"--force_yml {item!r}: empty key in {'.'.join(keys)!r}; expected KEY:SUBKEY=VALUE")
        node = opt
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise OptionsError(f"--force_yml {':'.join(keys)}: {key!r} is not a mapping")
        node[keys[-1]] = value


def _credit_force_yml(message: str, force_yml: Sequence[str]) -> str:
    """``message`` with ``(set by --force_yml ITEM)`` when the key path it names was given on the command line."""
    for item in force_yml:
        dotted = item.split("=", 1)[0].replace(":", ".")
        if f" {dotted}:" in f" {message}" or f" {dotted}." in f" {message}":
            return f"{message} (set by --force_yml {item})"
    return message


def _add_run_paths(opt: dict[str, Any], root: Path, is_train: bool) -> None:
    """Fill the folders a run writes to: ``experiments/<name>/...`` when training, ``results/<name>/...`` otherwise."""
    path = opt["path"]
    name = opt.get("name") or "run"
    if is_train:
        base = Path(path.get("experiments_root") or root / "experiments" / name)
        path["experiments_root"] = str(base)
        for sub in ("models", "training_states", "visualization"):
            path[sub] = path.get(sub) or str(base / sub)
        path["log"] = path.get("log") or str(base)
    else:
        base = Path(path.get("results_root") or root / "results" / name)
        path["results_root"] = str(base)
        path["visualization"] = path.get("visualization") or str(base / "visualization")
        path["log"] = path.get("log") or str(base)
    path["root"] = str(root)


def _lenient(raw: dict[str, Any]) -> dict[str, Any]:
    """Options that failed validation, kept as far as they are usable: mappings where mappings belong, defaults."""
    opt = _validate(copy.deepcopy(raw), SCHEMA, "", [])
    for key, spec in SCHEMA.fields.items():
        if isinstance(spec, Section) and key in opt and not isinstance(opt[key], dict):
            opt[key] = {}
    opt["path"] = opt.get("path") or {}
    datasets = opt.get("datasets") or {}
    opt["datasets"] = {k: v for k, v in datasets.items() if isinstance(v, dict) or v is None}
    _fill_defaults(opt, SCHEMA)
    for key, spec in SCHEMA.fields.items():  # a wrongly typed leaf falls back to its default (or is dropped)
        if isinstance(spec, Value) and key in opt:
            try:
                _coerce(opt[key], spec, key)
            except OptionsError:
                opt[key] = None if spec.default is _MISSING else copy.deepcopy(spec.default)
    return opt


def load_options(
    path: str | Path,
    force_yml: Sequence[str] = (),
    *,
    is_train: bool = False,
    root: str | Path | None = None,
    check_network: bool = True,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """Load a BasicSR-format YAML option file.

    Args:
        path: the ``.yml`` file.
        force_yml: overrides such as ``"train:total_iter=1000"`` (colon-separated keys), applied before validation.
        is_train: add training folders (``path.experiments_root`` ...) instead of result folders.
        root: folder that relative paths resolve against and that holds ``experiments/`` / ``results/``
            (default: the current directory).
        problems: when given, key and type problems are appended to it (one line each) instead of raised, and the
            options are returned as far as they could be read, so that a pre-flight check can go on to the paths
            and report everything at once. An unreadable file is still raised.

    Returns:
        The validated option dict with defaults, absolute paths, ``is_train`` and each dataset's ``phase``/``scale``.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionsError(f"{source}: option file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise OptionsError(f"{source}: invalid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise OptionsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    _apply_force_yml(raw, force_yml)
    try:
        opt = validate_options(raw, source, check_network=check_network)
    except OptionsError as err:
        found = [_credit_force_yml(p, force_yml) for p in err.problems]
        if problems is None:
            raise OptionsError(found) from None
        problems.extend(found)
        opt = _lenient(raw)
    skipped = [str(key) for key, value in (opt.get("datasets") or {}).items() if value is None]
    if skipped:  # null means "skip this dataset" (the usual way to leave out one you do not have)
        opt["skipped_datasets"] = skipped
        opt["datasets"] = {key: value for key, value in opt["datasets"].items() if value is not None}

    base = Path(root).resolve() if root is not None else Path.cwd().resolve()
    opt["is_train"] = is_train
    for key in _PATH_KEYS["path"]:
        opt["path"][key] = _resolve(opt["path"].get(key), base)
    for phase_key, dataset in (opt.get("datasets") or {}).items():
        for key in _PATH_KEYS["dataset"]:
            if key in dataset:
                dataset[key] = _resolve(dataset[key], base)
        dataset.setdefault("phase", str(phase_key).split("_")[0])
        dataset.setdefault("scale", opt["scale"])
    _add_run_paths(opt, base, is_train)
    return opt
