"""Typed option blocks checked against what their ``type`` names: metrics, losses, optimizers and schedules.

A block such as ``val.metrics.psnr: {type: calculate_psnr, crop_border: 4}`` or ``train.pixel_opt: {type: L1Loss,
loss_weight: 1.0}`` passes its other keys as keyword arguments to the registered function or class. Each key is
checked against that callable's named parameters, so a misspelt ``crop_bordr`` or ``loss_weigth`` is an error
naming the key and the closest valid one instead of being swallowed (or failing later with a traceback). An unknown
``type`` is an error too, listing the closest registered names.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LOSS_KEYS", "METRIC_OPTION_KEYS", "check_blocks", "keyword_parameters", "missing_type"]

#: Keys of a ``val.metrics`` entry that are read by the benchmark itself, not passed to the metric function.
METRIC_OPTION_KEYS = ("type", "better")
#: Parameters of a metric function that the benchmark fills (the images), not the option file.
_METRIC_INPUTS = ("img", "img2")
#: ``train`` keys holding a loss block.
LOSS_KEYS = ("pixel_opt", "perceptual_opt", "fft_opt", "gan_opt")


def keyword_parameters(target: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Names a callable (or a class's ``__init__``) takes by keyword, without ``self``, ``*args``, ``**kwargs``."""
    fn = target.__init__ if inspect.isclass(target) else target
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds and p.name != "self" and p.name not in skip]


def _unknown(key: str, valid: list[str], where: str, what: str) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"{what} takes: {', '.join(sorted(valid))}"
    return f"{where}: unknown key; {hint}"


def _check_kwargs(block: Mapping[str, Any], valid: list[str], where: str, what: str) -> list[str]:
    return [_unknown(key, valid, f"{where}.{key}", what) for key in block if key not in valid]


def missing_type(block: Mapping[str, Any], where: str, choices: list[str]) -> str:
    """The problem of a block without ``type``: a misspelt ``type`` key is named as such, else ``type`` is missing."""
    for key in block:
        if difflib.get_close_matches(str(key), ["type"], n=1, cutoff=0.6):
            return f"{where}.{key}: unknown key; did you mean 'type'?"
    return f"{where}.type: missing (one of: {', '.join(sorted(choices))})"


def _lookup(block: Mapping[str, Any], table: Mapping[str, Any], where: str, kind: str) -> tuple[Any, str | None]:
    name = block.get("type")
    if name is None:
        return None, missing_type(block, where, list(table))
    if name in table:
        return table[name], None
    close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(sorted(table))}"
    return None, f"{where}.type: unknown {kind} {name!r}; {hint}"


def _metric_problems(metrics: Any, source: str) -> list[str]:
    import restore.metrics  # noqa: F401  (registers the metric functions)
    from restore.utils.registry import METRIC_REGISTRY

    table = {name: METRIC_REGISTRY.get(name) for name in METRIC_REGISTRY}
    problems = []
    for name, entry in (metrics or {}).items() if isinstance(metrics, dict) else ():
        where = f"{source}: val.metrics.{name}"
        if not isinstance(entry, dict):
            continue  # reported by the schema
        fn, problem = _lookup(entry, table, where, "metric type")
        if problem:
            problems.append(problem)
            continue
        valid = [*METRIC_OPTION_KEYS, *keyword_parameters(fn, skip=_METRIC_INPUTS)]
        problems += _check_kwargs(entry, valid, where, entry["type"])
    return problems


def _typed_problems(block: Any, table: Mapping[str, Any], where: str, kind: str, skip: tuple[str, ...] = ()) -> list:
    if not isinstance(block, dict) or not block:
        return []
    target, problem = _lookup(block, table, where, kind)
    if problem:
        return [problem]
    valid = ["type", *keyword_parameters(target, skip=skip)]
    problems = _check_kwargs(block, valid, where, block["type"])
    if block["type"] == "PerceptualLoss" and isinstance(block.get("layer_weights"), dict):
        problems += _vgg_layer_problems(block, f"{where}.layer_weights")
    return problems


def _vgg_layer_problems(block: Mapping[str, Any], where: str) -> list[str]:
    """``layer_weights`` keys are VGG layer names (``conv5_4``) of the configured ``vgg_type``."""
    from restore.archs.vgg.arch import STAGES, layer_names

    vgg_type = str(block.get("vgg_type") or "vgg19")
    if vgg_type.removesuffix("_bn") not in STAGES:
        return [f"{where[: -len('.layer_weights')]}.vgg_type: unknown VGG {vgg_type!r}; one of: "
                f"{', '.join(sorted(STAGES))} (optionally with _bn)"]  # fmt: skip
    names = layer_names(vgg_type)
    return [_unknown(key, names, f"{where}.{key}", vgg_type) for key in block["layer_weights"] if key not in names]


def check_blocks(opt: Mapping[str, Any], source: str) -> list[str]:
    """Problems (one line each, prefixed by ``source``) in the typed blocks of a schema-checked option dict."""
    import restore.losses  # noqa: F401  (registers the losses)
    from restore.losses import UNSUPPORTED
    from restore.models.lr_schedule import SCHEDULES
    from restore.models.optim import OPTIMIZERS
    from restore.utils.registry import LOSS_REGISTRY

    problems = _metric_problems((opt.get("val") or {}).get("metrics") if isinstance(opt.get("val"), dict) else None,
                                source)  # fmt: skip
    train = opt.get("train") if isinstance(opt.get("train"), dict) else {}
    losses = {name: LOSS_REGISTRY.get(name) for name in LOSS_REGISTRY}
    for key in LOSS_KEYS:
        block = train.get(key)
        if isinstance(block, dict) and block.get("type") in UNSUPPORTED:
            why = UNSUPPORTED[block["type"]]
            problems.append(f"{source}: train.{key}.type: {block['type']} is not supported: {why}")
            continue
        problems += _typed_problems(block, losses, f"{source}: train.{key}", "loss type")
    for key in ("optim_g", "optim_d"):
        problems += _typed_problems(train.get(key), OPTIMIZERS, f"{source}: train.{key}", "optimizer",
                                    skip=("params",))  # fmt: skip
    problems += _typed_problems(train.get("scheduler"), SCHEDULES, f"{source}: train.scheduler", "scheduler")
    return problems
