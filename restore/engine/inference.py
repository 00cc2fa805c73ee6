"""``infer``: the whole test-time path from a low-quality batch to the network's output.

Steps: pad bottom/right to the network's ``pad_multiple`` (``padding.py``), run the network whole or tile by
tile (``tiling.py``), optionally clamp to [0, 1], crop the padding away (``scale`` times the pad).

Untiled (``tile=None``) this is exactly the official test-time path of the model classes (HAT/DRCT
``pre_process/process/post_process``, DRSformer ``test.py``, DLGSANet ``SRModel.test``), and with
``padding="symmetric"`` that of DRCT ``inference.py``. Tiled, the default ``blend="ramp"`` cross-fades
overlapping tiles (``tile`` = core size, ``tile_overlap`` = context on each side, the official ``tile_pad``);
``blend="average"`` reproduces the sliding-window average of DRCT ``inference.py`` / DRSformer ``test.py``
(``tile_overlap`` = overlap between neighbouring windows).

Memory: the output (and the padded input) live on ``lq``'s device; only tiles visit the network's device, so
device memory is bounded by the tile size, not the image size. When the network runs out of memory, a batch
of tiles is split, then a single tile is re-tiled with half the core size (recursively); a tile that still does
not fit raises ``RuntimeError``. A failed tile is never skipped or replaced by another tile's output.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from tqdm import tqdm

from restore.engine.forward import Precision, TileForward, check_precision, is_out_of_memory, network_spec
from restore.engine.memory import auto_tile_size
from restore.engine.padding import PADDING_MODES, PaddingMode, pad_bottom_right
from restore.engine.tiling import AxisPlan, plan_averaged_axis, plan_blended_axis

__all__ = ["BLEND_MODES", "DEFAULT_TILE_OVERLAP", "VARIANTS", "infer", "resolve_tile_overlap"]

logger = logging.getLogger("restore.engine")

Blend = Literal["ramp", "average"]
BLEND_MODES: tuple[str, ...] = ("ramp", "average")
#: Context pixels around each tile core (the official ``tile_pad``) unless the caller gives ``tile_overlap``;
#: a fixed-size network gets at most a quarter of its input side (:func:`resolve_tile_overlap`).
DEFAULT_TILE_OVERLAP = 32

#: Named official test-time paths: ``infer(net, lq, **VARIANTS[name], ...)``.
VARIANTS: dict[str, dict[str, str]] = {
    "model_class": {"padding": "reflect", "blend": "ramp"},  # HAT/DRCT model classes, DRSformer, DLGSANet
    "inference_script": {"padding": "symmetric", "blend": "average"},  # DRCT inference.py
}


@contextlib.contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


#: A float input whose maximum exceeds this is taken for 0-255 data (warned about once per process).
RANGE_WARNING_THRESHOLD = 2.0
_range_warned = False


def _input_channels(net: nn.Module) -> int | None:
    """Channels the network takes: its first convolution's ``in_channels`` (None when it has no convolution)."""
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else int(first.in_channels)


def _check_input(net: nn.Module, lq: object) -> None:
    """Reject inputs that would fail deep inside the network (or give garbage) with a message saying what fits."""
    global _range_warned
    if not isinstance(lq, Tensor):
        hint = " (convert with torch.from_numpy(img).permute(2, 0, 1)[None])" if hasattr(lq, "__array__") else ""
        raise TypeError(f"lq must be a torch.Tensor (B, C, H, W) float in [0, 1], got {type(lq).__name__}{hint}")
    if lq.dim() != 4 or not lq.is_floating_point():
        raise ValueError(f"lq must be a float (B, C, H, W) tensor, got {lq.dtype} of shape {tuple(lq.shape)}")
    if 0 in lq.shape:
        raise ValueError(f"lq is empty: shape {tuple(lq.shape)}; expected B, C, H and W >= 1")
    channels = _input_channels(net)
    if channels is not None and lq.shape[1] != channels:
        raise ValueError(
            f"lq has {lq.shape[1]} channel(s), {type(net).__name__} takes {channels}; "
            "drop alpha (lq[:, :3]) or repeat gray (lq.expand(-1, 3, -1, -1))"
        )
    if not _range_warned and float(lq.detach().amax()) > RANGE_WARNING_THRESHOLD:
        _range_warned = True
        warnings.warn(
            f"lq values reach {float(lq.detach().amax()):.4g}; the networks expect [0, 1] "
            "(divide 8-bit data by 255); this warning is shown once",
            UserWarning,
            stacklevel=3,
        )


def _resolve_device(net: nn.Module, device: str | torch.device | None) -> torch.device:
    first = next(net.parameters(), None)
    current = first.device if first is not None else torch.device("cpu")
    if device is None:
        return current
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device != current:
        net.to(device)
    return device


class _Tiler:
    """Runs tiles through a ``TileForward`` with out-of-memory recovery; accumulates on ``out_device``."""

    def __init__(self, forward: TileForward, scale: int, multiple: int, context: int, batch_size: int,
                 out_device: torch.device, progress: bool | None) -> None:  # fmt: skip
        self.forward = forward
        self.scale = scale
        self.multiple = multiple
        self.context = context
        self.batch_limit = max(1, batch_size)
        self.core_limit: int | None = None  # cores larger than this ran out of memory before
        self.out_device = out_device
        self.progress = progress

    # ------------------------------------------------------------------ running regions with OOM recovery

    def _check(self, y: Tensor, batch: Tensor) -> None:
        want = (batch.shape[0], batch.shape[2] * self.scale, batch.shape[3] * self.scale)
        if (y.shape[0], y.shape[2], y.shape[3]) != want:
            raise ValueError(
                f"network output {tuple(y.shape)} for input {tuple(batch.shape)}: expected (N, C, H*{self.scale}, "
                f"W*{self.scale}); check the network's 'scale' attribute"
            )

    def run(self, crops: Sequence[Tensor], core: int) -> list[Tensor]:
        """Network outputs for equally shaped ``(B, C, h, w)`` crops (float32, on ``out_device``)."""
        if self.core_limit is not None and core > self.core_limit:
            return [self.split(crop, core) for crop in crops]
        if len(crops) > self.batch_limit:
            out: list[Tensor] = []
            for k in range(0, len(crops), self.batch_limit):
                out += self.run(crops[k : k + self.batch_limit], core)
            return out
        batch = torch.cat(list(crops), 0) if len(crops) > 1 else crops[0]
        try:
            y = self.forward(batch, self.out_device)
        except Exception as err:  # only allocation failures are handled; everything else is re-raised
            if not is_out_of_memory(err):
                raise
            y = None
        if y is not None:
            self._check(y, batch)
            return list(y.split(crops[0].shape[0], 0))
        del batch
        if self.forward.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(crops) > 1:
            self.batch_limit = max(1, len(crops) // 2)
            logger.warning("out of memory with %d tiles per batch; retrying with %d", len(crops), self.batch_limit)
            return self.run(crops, core)
        return [self.split(crops[0], core)]

    def split(self, crop: Tensor, core: int) -> Tensor:
        """Output for one region that did not fit: re-tile it with half the core size (same context)."""
        half = core // 2
        h, w = crop.shape[2:]
        rows = plan_blended_axis(h, max(half, 1), self.context, self.multiple, self.scale)
        cols = plan_blended_axis(w, max(half, 1), self.context, self.multiple, self.scale)
        if half < 1 or (rows.size, cols.size) == (h, w):
            raise RuntimeError(
                f"out of memory on {self.forward.device} for a {h}x{w} tile even after halving the tile; "
                f"use a smaller tile_overlap (now {self.context}), a lower precision or a larger device"
            )
        if self.core_limit is None or half < self.core_limit:
            self.core_limit = half
            logger.warning("out of memory on a %dx%d tile; re-tiling with %d-pixel cores", h, w, half)
        return self.blended(crop, half, quiet=True)

    # ------------------------------------------------------------------------------------------ tilings

    def _bar(self, total: int, quiet: bool) -> tqdm:
        disable = True if quiet or total <= 1 else (None if self.progress is None else not self.progress)
        return tqdm(total=total, desc="tiles", unit="tile", leave=False, disable=disable)

    def blended(self, image: Tensor, core: int, quiet: bool = False, region: int | None = None) -> Tensor:
        """Cross-faded tiles over a padded ``(B, C, H, W)`` image; returns ``(B, C', H*s, W*s)``.
        ``region`` forces the tile size (networks of fixed input size)."""
        rows = plan_blended_axis(image.shape[2], core, self.context, self.multiple, self.scale, region)
        cols = plan_blended_axis(image.shape[3], core, self.context, self.multiple, self.scale, region)
        if len(rows) == 1 and len(cols) == 1:
            return self.run([image], core)[0]  # the exact untiled path
        return self._accumulate(image, rows, cols, core, quiet, average=False)

    def averaged(self, image: Tensor, tile: int, overlap: int) -> Tensor:
        """Sliding windows averaged with equal weights (DRCT ``inference.py``, DRSformer ``test.py``)."""
        h, w = image.shape[2:]
        tile = min(tile, h, w)
        if tile % self.multiple:
            raise ValueError(
                f"averaged tiles must be multiples of the network's pad_multiple {self.multiple}; "
                f"got tile {tile} (the tile is clamped to the padded image size {h}x{w})"
            )
        rows, cols = plan_averaged_axis(h, tile, overlap), plan_averaged_axis(w, tile, overlap)
        return self._accumulate(image, rows, cols, tile, quiet=False, average=True)

    def _accumulate(self, image: Tensor, rows: AxisPlan, cols: AxisPlan, core: int, quiet: bool,
                    average: bool) -> Tensor:  # fmt: skip
        s = self.scale
        positions = [(y, x) for y in rows.starts for x in cols.starts]  # rows outer, columns inner
        ramps = [
            [None] * len(plan) if plan.weights is None else [w.to(torch.float32) for w in plan.weights]
            for plan in (rows, cols)
        ]
        index = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
        out: Tensor | None = None
        done = 0
        with self._bar(len(positions), quiet) as bar:
            k = 0
            while k < len(positions):
                group = range(k, min(k + self.batch_limit, len(positions)))
                k = group.stop
                crops = [image[:, :, y : y + rows.size, x : x + cols.size] for y, x in (positions[n] for n in group)]
                for n, y_tile in zip(group, self.run(crops, core)):
                    if out is None:
                        out = torch.zeros(*y_tile.shape[:2], rows.length * s, cols.length * s, device=self.out_device)
                    i, j = index[n]
                    y, x = positions[n]
                    if not average:
                        y_tile = _weighted(y_tile, ramps[0][i], ramps[1][j])
                    out[:, :, y * s : (y + rows.size) * s, x * s : (x + cols.size) * s] += y_tile
                    done += 1
                    bar.update(1)
        if out is None or done != len(positions):  # every tile contributes exactly once, or nothing is returned
            raise RuntimeError(f"tiling bookkeeping error: {done} of {len(positions)} tiles accumulated")
        if average:
            out /= _coverage(rows, s, out.device)[:, None] * _coverage(cols, s, out.device)[None, :]
        return out


def _weighted(y: Tensor, w_rows: Tensor | None, w_cols: Tensor | None) -> Tensor:
    if w_rows is not None:
        y = y * w_rows.to(y.device)[:, None]
    if w_cols is not None:
        y = y * w_cols.to(y.device)[None, :]
    return y


def _coverage(plan: AxisPlan, scale: int, device: torch.device) -> Tensor:
    """How many windows of an averaged plan cover each output pixel along the axis."""
    count = torch.zeros(plan.length * scale, device=device)
    for start in plan.starts:
        count[start * scale : (start + plan.size) * scale] += 1
    return count


def _fixed_core(height: int, width: int, size: int, wanted: int | None, context: int, multiple: int,
                scale: int) -> int:  # fmt: skip
    """Largest core, at most ``wanted`` (or ``size``), whose tile regions fit in ``size`` pixels along both axes."""
    core = min(wanted or size, size)
    while core >= 1:
        try:
            for length in (height, width):
                plan_blended_axis(length, core, context, multiple, scale, size)
            return core
        except ValueError:
            core -= 1
    raise ValueError(
        f"tile_overlap {context} leaves no room for a tile core in the network's fixed {size}x{size} input; "
        f"use a tile_overlap below {size // 2}"
    )


def _extend_to(image: Tensor, size: int, padding: PaddingMode) -> Tensor:
    """Pad bottom/right (same mirror rule as ``padding``) so that both sides are at least ``size``."""
    h, w = image.shape[2:]
    if h >= size and w >= size:
        return image
    grown, _ = pad_bottom_right(image, size, padding)  # sides below ``size`` grow to it (periodic mirror)
    return grown[:, :, : max(h, size), : max(w, size)]


def _warn_padded_up(height: int, width: int, size: int) -> None:
    """One line: an image smaller than a fixed-size network's input does not get the network's own result."""
    logger.warning(
        "a %dx%d input is padded to the fixed-size model's %dx%d input, so the result is not the PyTorch result "
        "(the network sees the padding: at the borders, and everywhere for global attention); export with "
        "dynamic height and width for exact results",
        height, width, size, size,
    )  # fmt: skip


def _fixed_size_tiles(tiler: _Tiler, image: Tensor, size: int, tile: int | str | None, context: int,
                      padding: PaddingMode, blend: Blend) -> Tensor:  # fmt: skip
    """Tiles of exactly ``size`` over ``image`` (padded up to ``size`` first where smaller); the output keeps the
    padded size, which ``infer`` crops."""
    image = _extend_to(image, size, padding)
    if blend == "average":
        return tiler.averaged(image, size, context)
    wanted = None if tile in (None, "auto") else int(tile)
    core = _fixed_core(*image.shape[2:], size, wanted, context, tiler.multiple, tiler.scale)
    return tiler.blended(image, core, region=size)


def resolve_tile_overlap(tile_overlap: int | None, fixed_size: int | None) -> int:
    """``tile_overlap`` checked, or its default for ``None``: ``DEFAULT_TILE_OVERLAP`` px, and for a network with
    a fixed input side at most a quarter of it, so that half of every tile is core.

    Raises:
        ValueError: a negative overlap, or one that leaves a fixed-size network no core (``2 * overlap >= size``).
    """
    if tile_overlap is None:
        return DEFAULT_TILE_OVERLAP if fixed_size is None else min(DEFAULT_TILE_OVERLAP, fixed_size // 4)
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")
    if fixed_size is not None and 2 * tile_overlap >= fixed_size:
        raise ValueError(
            f"tile_overlap {tile_overlap} leaves no room for a tile core in the network's fixed {fixed_size}x"
            f"{fixed_size} input; use a tile_overlap below {fixed_size // 2}, or export with a larger tile"
        )
    return tile_overlap


def infer(
    net: nn.Module,
    lq: Tensor,
    *,
    tile: int | Literal["auto"] | None = None,
    tile_overlap: int | None = None,
    tile_batch_size: int = 1,
    padding: PaddingMode = "reflect",
    blend: Blend = "ramp",
    precision: Precision = "fp32",
    clamp: bool | None = None,
    device: str | torch.device | None = None,
    channels_last: bool | None = None,
    compile: bool | str = False,
    progress: bool | None = None,
) -> Tensor:
    """Restore a batch of images with ``net`` (eval mode, no gradients).

    Args:
        net: network with the engine attributes ``scale``, ``pad_multiple``, ``clamp_output``, ``supports_fp16``.
        lq: ``(B, C, H, W)`` float RGB in [0, 1]; the output is returned on the same device.
        tile: ``None`` = whole image (the official path); an int = tile core size in input pixels
            (blend ``"ramp"``) or the window size (blend ``"average"``); ``"auto"`` = from free device memory.
        tile_overlap: ramp: context pixels added on every side of a core (official ``tile_pad``); average:
            overlap of neighbouring windows (official ``tile_overlap``). ``None``: ``DEFAULT_TILE_OVERLAP``, at
            most a quarter of a fixed input side.
        tile_batch_size: tiles of equal shape run together (halved on out-of-memory).
        padding: ``"reflect"`` (model classes, DRSformer ``test.py``) or ``"symmetric"`` (DRCT ``inference.py``).
        blend: ``"ramp"`` (cross-faded tiles) or ``"average"`` (official sliding-window average).
        precision: ``"fp32"``, ``"bf16"`` (autocast; recommended on GPU) or ``"fp16"`` (refused for networks
            with ``supports_fp16 = False``).
        clamp: clamp the output to [0, 1]; ``None`` = the network's ``clamp_output``.
        device: where the network runs (moved there if needed); ``None`` = where its parameters are.
        channels_last: NHWC memory format (the network is converted in place); ``None``: the network's
            ``cpu_memory_format`` when it runs on the CPU, NCHW elsewhere.
        compile: ``torch.compile`` the network (cached on it); a string names the dynamo backend.
        progress: tqdm bar over tiles; ``None`` = only on a terminal and only when there are several tiles.

    A network with ``fixed_input_size`` (an ONNX model exported fixed-size) always runs on tiles of exactly that
    size: images smaller than it are padded first (and cropped back, with a warning that the result then differs
    from the network's own), ``tile=None``/``"auto"`` picks the largest core that fits, and a larger ``tile`` is
    reduced to fit.

    Returns:
        ``(B, C, H * scale, W * scale)`` float32 on ``lq.device``.

    Raises:
        TypeError: ``lq`` is not a tensor (a numpy array, say). ValueError: wrong rank or dtype, an empty
            dimension, or a channel count the network does not take. A float input above 1 by far (0-255 data)
            is warned about once.
    """
    _check_input(net, lq)
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
    if tile is not None and tile != "auto" and (not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
    spec = network_spec(net)
    tile_overlap = resolve_tile_overlap(tile_overlap, spec.fixed_size)
    check_precision(precision, spec, net)
    run_device = _resolve_device(net, device)
    forward = TileForward(net, run_device, precision, channels_last=channels_last, compile=compile)
    s = spec.scale
    h, w = lq.shape[2:]
    tiler = _Tiler(forward, s, spec.pad_multiple, tile_overlap, tile_batch_size, lq.device, progress)
    with _eval_mode(net):
        image, _ = pad_bottom_right(lq.float(), spec.pad_multiple, padding)
        if spec.fixed_size is not None:
            if min(image.shape[2:]) < spec.fixed_size:
                _warn_padded_up(h, w, spec.fixed_size)
            out = _fixed_size_tiles(tiler, image, spec.fixed_size, tile, tile_overlap, padding, blend)
        else:
            if tile == "auto":
                tile = auto_tile_size(net, forward, spec, tile_overlap, tile_batch_size, lq.shape[1])
            if tile is None:
                out = tiler.blended(image, max(image.shape[2:]))
            elif blend == "average":
                out = tiler.averaged(image, tile, tile_overlap)
            else:
                out = tiler.blended(image, tile)
    if spec.clamp_output if clamp is None else clamp:
        out = out.clamp_(0, 1)
    return out[:, :, : h * s, : w * s]
