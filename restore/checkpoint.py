"""Safe checkpoint I/O: load any official ``.pth``/``.pt``/``.ckpt``/``.safetensors`` without running pickled code.

Loading never executes code from the file: pickles go through ``torch.load(weights_only=True)``, which refuses
arbitrary globals, and ``.safetensors`` goes through the ``safetensors`` package's validating parser.
Saving uses BasicSR's layout ``{"params": ..., "params_ema": ...}`` and is atomic.

Example:
    >>> sd = load_state_dict("HAT_SRx4.pth")               # params_ema, falling back to params
    >>> report = load_network(net, sd, strict=True)         # raises CheckpointError listing mismatches
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from restore.utils.files import atomic_path

__all__ = [
    "CheckpointError",
    "LoadReport",
    "canonicalize",
    "checkpoint_file_problem",
    "checkpoint_option_problem",
    "load_network",
    "load_state_dict",
    "read_checkpoint",
    "read_safetensors",
    "save_checkpoint",
    "write_safetensors",
]

#: Containers that wrap a state dict, unwrapped in this order after the requested ``param_key``.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net")
#: Key prefixes added by wrappers: DataParallel/DDP and ``torch.compile``.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the one-line message names the file and the reason."""


# ----------------------------------------------------------------------------------------------- safetensors


def _safetensors_reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.removeprefix("Error while deserializing: ")[:160]


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file into CPU tensors with the ``safetensors`` package (no code runs).

    Raises:
        CheckpointError: one line naming the file: unreadable, truncated, or a header or tensor entry that breaks
            the format (the parser checks header type, dtypes, shapes against byte ranges and offsets).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the file ({err.strerror or err})") from None
    try:
        return dict(safetensors.torch.load(data))
    except (SafetensorError, TypeError, ValueError, KeyError, RuntimeError, OverflowError) as err:
        kind = "truncated" if len(data) < 8 or "not fully covered" in str(err) else "corrupt"
        raise CheckpointError(f"{path}: {kind} safetensors file ({_safetensors_reason(err)})") from None


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Write ``tensors`` as ``.safetensors`` with the ``safetensors`` package (CPU copies), atomically.

    ``metadata`` values are stored as strings (the format's ``__metadata__`` is a string-to-string map).
    """
    cpu = {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    encoded = safetensors.torch.save(cpu, metadata=meta)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(encoded)


# ------------------------------------------------------------------------------------------------ loading


def _sniff(path: Path) -> str:
    """Return ``zip`` (torch >= 1.6), ``pickle`` (legacy torch), ``safetensors`` or ``unknown``."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    if head.startswith(b"PK"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def checkpoint_file_problem(path: str | Path) -> str | None:
    """One line when ``path`` cannot be a checkpoint file (a folder, or nothing there); None when it is a file."""
    path = Path(path)
    if path.is_dir():
        return f"{path}: is a folder, expected a checkpoint file"
    if not path.is_file():
        return f"{path}: checkpoint file not found"
    return None


def checkpoint_option_problem(value: Any, key: str) -> str | None:
    """``"<key>: <path>: ..."`` when option ``key`` names a path (``value``) that cannot be a checkpoint file; None
    when it is a file or the option is unset (None or empty)."""
    if not isinstance(value, str) or not value:
        return None
    problem = checkpoint_file_problem(value)
    return f"{key}: {problem}" if problem else None


def read_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint file's top-level object without executing pickled code.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file; a file that is not a checkpoint; or a pickle
            that needs arbitrary Python globals (refused: that would run code from the file).
    """
    path = Path(path)
    problem = checkpoint_file_problem(path)
    if problem:
        raise CheckpointError(problem)
    kind = "safetensors" if path.suffix == ".safetensors" else _sniff(path)
    if kind == "safetensors":
        return read_safetensors(path)
    if kind == "unknown":
        raise CheckpointError(f"{path}: not a checkpoint (neither a torch .pth/.pt/.ckpt nor a .safetensors file)")
    if kind == "zip" and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (damaged zip archive)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "Unsupported global" in text:
            culprit = next((line.strip() for line in text.splitlines() if "global" in line.lower()), "")
            raise CheckpointError(
                f"{path}: refused: the pickle needs arbitrary Python objects ({culprit[:120]}), which could run code; "
                "only tensors and plain containers are loaded. Re-save the weights from trusted code as a state dict."
            ) from None
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({text.splitlines()[0][:120]})") from None
    except (EOFError, RuntimeError, OSError, ValueError, struct.error) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def canonicalize(
    obj: Any, param_key: str | None = "params_ema", source: str = "<checkpoint>"
) -> dict[str, torch.Tensor]:
    """Unwrap ``obj`` down to a flat ``{key: Tensor}`` state dict.

    ``param_key`` is tried first; ``params_ema`` falls back to ``params`` (BasicSR). Then ``state_dict``, ``model``
    and ``net`` wrappers are unwrapped, and ``module.``/``_orig_mod.`` prefixes are stripped.
    """
    order = ([param_key] if param_key else []) + [k for k in WRAPPER_KEYS if k != param_key]
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in order if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: not a checkpoint (holds a {type(obj).__name__}, not a state dict)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source}: not a checkpoint (no tensors under keys {', '.join(map(str, obj))[:120]})")
    out = {}
    for key, value in tensors.items():
        for prefix in STRIPPED_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_state_dict(path: str | Path, param_key: str | None = "params_ema") -> dict[str, torch.Tensor]:
    """Read ``path`` safely and return its flat state dict (see ``read_checkpoint`` and ``canonicalize``)."""
    return canonicalize(read_checkpoint(path), param_key, source=str(path))


# ------------------------------------------------------------------------------------------------ network


@dataclass
class LoadReport:
    """What a (strict or partial) load did. Shapes are tuples; ``mismatched`` holds ``(key, expected, got)``."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 3) -> str:
        """One line: the first mismatched keys with expected vs actual shapes, then missing/unexpected keys."""
        parts = []
        if self.mismatched:
            shown = "; ".join(f"{k}: expected {list(e)}, got {list(g)}" for k, e, g in self.mismatched[:limit])
            parts.append(f"{len(self.mismatched)} shape mismatch(es) ({shown})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s) ({', '.join(self.missing[:limit])})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s) ({', '.join(self.unexpected[:limit])})")
        return "; ".join(parts) or f"all {len(self.loaded)} keys loaded"

    def table(self) -> str:
        """A readable table of every key that was not loaded, for fine-tuning logs."""
        rows = [("status", "key", "model shape", "checkpoint shape")]
        rows += [("mismatched", k, str(list(e)), str(list(g))) for k, e, g in self.mismatched]
        rows += [("missing", k, "", "-") for k in self.missing]
        rows += [("unexpected", k, "-", "") for k in self.unexpected]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join([f"loaded {len(self.loaded)} key(s); skipped {len(rows) - 1}:", *lines])


def compare_state_dicts(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]) -> LoadReport:
    """Classify every key of both dicts as loadable, missing, unexpected or shape-mismatched."""
    report = LoadReport()
    for key, expected in model_sd.items():
        if key not in ckpt_sd:
            report.missing.append(key)
        elif tuple(ckpt_sd[key].shape) != tuple(expected.shape):
            report.mismatched.append((key, tuple(expected.shape), tuple(ckpt_sd[key].shape)))
        else:
            report.loaded.append(key)
    report.unexpected = [key for key in ckpt_sd if key not in model_sd]
    return report


def load_network(
    net: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    strict: bool = True,
    param_key: str | None = "params_ema",
) -> LoadReport:
    """Load weights into ``net`` (unwrapped from DDP if needed).

    Args:
        source: a checkpoint path or an (already canonical) state dict.
        strict: require identical keys and shapes; otherwise every matching key is loaded and the rest skipped.

    Raises:
        CheckpointError: strict load with missing/unexpected keys or shape mismatches (first mismatches listed).
    """
    name = str(source) if isinstance(source, (str, Path)) else "state dict"
    state = load_state_dict(source, param_key) if isinstance(source, (str, Path)) else canonicalize(source, param_key)
    target = net.module if hasattr(net, "module") and isinstance(net.module, nn.Module) else net
    report = compare_state_dicts(target.state_dict(), state)
    if strict and not report.ok:
        raise CheckpointError(f"{name}: does not fit {type(target).__name__}: {report.summary()}")
    target.load_state_dict({k: state[k] for k in report.loaded}, strict=strict)
    return report


# ------------------------------------------------------------------------------------------------- saving


def _cpu_state(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = (obj.module if hasattr(obj, "module") else obj).state_dict()
    return canonicalize({k: v.detach().cpu() for k, v in obj.items()}, param_key=None)


def save_checkpoint(
    path: str | Path,
    params: nn.Module | Mapping[str, torch.Tensor],
    params_ema: nn.Module | Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Save weights in BasicSR's layout (``params``, optionally ``params_ema``), atomically.

    A ``.safetensors`` path stores one state dict (``params_ema`` when given, else ``params``).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        write_safetensors(path, _cpu_state(params_ema if params_ema is not None else params))
        return path
    payload = {"params": _cpu_state(params)}
    if params_ema is not None:
        payload["params_ema"] = _cpu_state(params_ema)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
