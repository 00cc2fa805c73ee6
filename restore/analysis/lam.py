"""Local Attribution Maps (LAM; Gu & Dong, "Interpreting Super-Resolution Networks with Local Attribution Maps",
CVPR 2021): which LR pixels a super-resolution network draws on for one square window of its output.

The procedure is the one of the official LAM code (``X-Lowlevel-Vision/LAM_Demo``, ``SaliencyModel/``), the code
behind the LAM figures of the HAT and DRCT papers:

1. Objective ``D(Y)``: for each channel and SR pixel the gradient magnitude
   ``sqrt((Y[i, j] - Y[i+1, j])^2 + (Y[i, j] - Y[i, j+1])^2)``, summed over the window (rows ``y .. y+window-1``,
   columns ``x .. x+window-1``) of the ``(sH-1, sW-1)`` map; a window running past that map is cut at its border.
2. Path: progressively less blurred copies of the LR input ``I``. With ``sigma_k = sigma * (1 - k / fold)``,
   ``k = 0 .. fold``, and ``K_k`` the ``l x l`` isotropic Gaussian of width ``sigma_k + 1e-5``, step ``i``
   (``0 .. fold-1``) feeds ``x_i = I * K_{i+1}`` (``x_{fold-1} = I``) and uses the path derivative
   ``d_i = I * ((K_{i+1} - K_i) * fold)``. Filtering is a per-channel correlation with mirrored borders that do not
   repeat the edge pixel (OpenCV's ``BORDER_REFLECT_101``).
3. Attribution: ``A = (1 / fold) * sum_i g_i * d_i`` with ``g_i = dD(F(x_i)) / dx_i`` (NaN entries set to 0).
4. Saliency ``S = |sum_c A_c| / max |sum_c A_c|``; ``gini`` is the Gini coefficient of ``S + 1e-7`` and the
   Diffusion Index ``DI = (1 - gini) * 100``: the larger, the more input pixels the window depends on.

Differences from the demo, both deliberate:

* The network runs in ``eval()`` mode. The demo never calls ``eval()``, so for HAT and DRCT (``drop_path_rate``
  0.1) stochastic depth stays active and every run gives a different map and DI.
* Inputs whose size is not a multiple of the network's ``pad_multiple`` are reflect-padded at the bottom/right and
  the output cropped, as the official test pipelines do (the demo calls the network on the bare input, which
  fails for such sizes); for sizes that are multiples nothing changes.

Path steps run in chunks of ``batch`` images (memory is that of ``batch`` forward/backward passes) and the
gradients are taken with respect to the input only, so the network's parameter gradients are left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LamError",
    "LamResult",
    "attribution_objective",
    "blur_kernels",
    "blur_path",
    "check_window",
    "diffusion_index",
    "gini",
    "lam",
    "saliency_map",
]

#: Added to every kernel width, so that ``sigma = 0`` gives a delta kernel instead of a division by zero.
KERNEL_EPSILON = 1e-5
#: Added to every saliency value before the Gini coefficient (all-zero maps stay defined).
GINI_EPSILON = 1e-7


class LamError(ValueError):
    """Unusable LAM arguments (window, image size, path parameters); the message is one line."""


@dataclass
class LamResult:
    """Outcome of :func:`lam`. Tensors are float32 on the CPU.

    Attributes:
        attribution: ``(3, H, W)`` path-integrated gradient ``A`` over the LR input.
        saliency: ``(H, W)`` map ``|sum_c A_c| / max``, in [0, 1].
        saliency_abs: ``(H, W)`` map ``|sum_c A_c|`` before normalisation.
        gini: Gini coefficient of ``saliency`` (0 = evenly spread, 1 = one pixel).
        di: Diffusion Index ``(1 - gini) * 100``.
        sr: ``(1, 3, sH, sW)`` network output on the unblurred input (the last path step), not clamped.
        objective: ``(fold,)`` float64, ``D(F(x_i))`` for every path step.
        box: ``(x, y, width, height)`` of the window actually summed, in SR pixels (the window cut at the border of
            the ``(sH-1, sW-1)`` gradient map).
        params: every parameter of the run (x, y, window, sigma, fold, l, scale, batch, ...), JSON-ready.
        step_grads: ``{i: (3, H, W) g_i}`` for the steps requested with ``keep_steps``.
    """

    attribution: Tensor
    saliency: Tensor
    saliency_abs: Tensor
    gini: float
    di: float
    sr: Tensor
    objective: Tensor
    box: tuple[int, int, int, int]
    params: dict = field(default_factory=dict)
    step_grads: dict[int, Tensor] = field(default_factory=dict)


def _as_batch(lr: Tensor) -> Tensor:
    if not isinstance(lr, Tensor):
        raise LamError(f"lr: expected a torch.Tensor, got {type(lr).__name__}")
    if lr.dim() == 3:
        lr = lr[None]
    if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
        raise LamError(f"lr: expected a (3, H, W) or (1, 3, H, W) RGB image, got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise LamError(f"lr: expected a float tensor in [0, 1], got {lr.dtype}")
    return lr


def blur_kernels(sigma: float, fold: int, l: int) -> Tensor:
    """The ``fold + 1`` path kernels ``K_k``, ``(fold + 1, l, l)`` float64; ``K_0`` is the widest, ``K_fold`` a delta.

    Taps sit at offsets ``-(l // 2) + 1 .. l // 2`` (floor division, so for odd ``l`` symmetric around 0); each
    kernel is normalised to sum 1.
    """
    offsets = torch.arange(-l // 2 + 1, l // 2 + 1, dtype=torch.float64)
    sq = offsets[:, None] ** 2 + offsets[None, :] ** 2
    widths = torch.from_numpy(np.linspace(sigma, 0.0, fold + 1)) + KERNEL_EPSILON
    kernels = torch.exp(-sq[None] / (2.0 * widths[:, None, None] ** 2))
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def _filter(img: Tensor, kernels: Tensor) -> Tensor:
    """``img`` ``(1, 3, H, W)`` correlated with each of ``kernels`` ``(n, l, l)`` per channel -> ``(n, 3, H, W)``.

    The kernel's anchor is tap ``l // 2`` and borders are mirrored without the edge pixel (``BORDER_REFLECT_101``).
    """
    l = kernels.shape[-1]
    before, after = l // 2, l - 1 - l // 2
    padded = F.pad(img, (before, after, before, after), mode="reflect")  # (1, 3, H+l-1, W+l-1)
    channels = padded.transpose(0, 1)  # (3, 1, ...): every channel filtered by every kernel
    out = F.conv2d(channels, kernels[:, None].to(img.dtype))  # (3, n, H, W)
    return out.transpose(0, 1).contiguous()


def blur_path(lr: Tensor, sigma: float = 1.2, fold: int = 50, l: int = 9, steps: Sequence[int] | None = None):
    """Path images ``x_i`` and path derivatives ``d_i`` (see the module docstring) for ``steps`` (default: all).

    Args:
        lr: ``(3, H, W)`` or ``(1, 3, H, W)`` LR input in [0, 1].
        steps: indices in ``0 .. fold-1``.

    Returns:
        ``(images, derivatives)``, each ``(len(steps), 3, H, W)`` float32 on ``lr``'s device. Both are computed in
        float64 and rounded once.
    """
    img = _as_batch(lr).detach().double()
    kernels = blur_kernels(sigma, fold, l).to(img.device)
    index = torch.arange(fold) if steps is None else torch.as_tensor(list(steps), dtype=torch.long)
    index = index.to(img.device)
    images = _filter(img, kernels[index + 1])
    derivatives = _filter(img, (kernels[index + 1] - kernels[index]) * fold)
    return images.float(), derivatives.float()


def attribution_objective(sr: Tensor, x: int, y: int, window: int) -> Tensor:
    """``D`` per image: the gradient magnitude of ``sr`` ``(N, C, sH, sW)`` summed over the window, ``(N,)``.

    The window covers rows ``y .. y+window-1`` and columns ``x .. x+window-1`` of the ``(sH-1, sW-1)`` map and is
    cut at its border.
    """
    part = sr[:, :, y : y + window + 1, x : x + window + 1]
    centre = part[:, :, :-1, :-1]
    down = (centre - part[:, :, 1:, :-1]).pow(2)
    right = (centre - part[:, :, :-1, 1:]).pow(2)
    return (down + right).pow(0.5).sum(dim=(1, 2, 3))


def saliency_map(attribution: Tensor) -> tuple[Tensor, Tensor]:
    """``(|sum_c A_c| / max, |sum_c A_c|)`` of a ``(3, H, W)`` attribution; the absolute value of the channel sum."""
    raw = attribution.sum(dim=0).abs()
    peak = raw.max()
    return (raw / peak if peak > 0 else torch.zeros_like(raw)), raw


def gini(saliency: Tensor | np.ndarray) -> float:
    """Gini coefficient of the flattened map (float32 arithmetic as in the official code).

    Values are shifted to be non-negative, ``1e-7`` is added, and with the values sorted ascending
    ``a_1 <= .. <= a_n``: ``gini = sum_i (2i - n - 1) a_i / (n * sum_i a_i)``.
    """
    values = np.asarray(saliency.detach().cpu() if isinstance(saliency, Tensor) else saliency, dtype=np.float32)
    values = values.reshape(-1).copy()
    low = values.min()
    if low < 0:
        values -= low
    values += np.float32(GINI_EPSILON)
    values.sort()
    n = values.size
    weights = 2 * np.arange(1, n + 1) - n - 1  # int64: the products below are float64
    numerator = np.sum(weights * values)
    denominator = values.sum() * np.float32(n)  # float32, as in the official code
    return float(numerator / denominator)


def diffusion_index(gini_value: float) -> float:
    """``DI = (1 - gini) * 100``, in percent."""
    return (1.0 - gini_value) * 100.0


def check_window(
    lr_size: tuple[int, int], scale: int, x: int, y: int, window: int, strict: bool = False
) -> tuple[int, int, int, int]:
    """Validate a window given in SR pixels and return ``(x, y, width, height)`` of the part that is summed.

    Always refused: non-integer or negative coordinates, ``window < 1`` and windows that do not reach into the
    ``(sH-1, sW-1)`` gradient map. A window running past its border is cut, as the official code does. With
    ``strict`` (the command line's default), a window must also lie inside the SR image and ``x``, ``y`` and
    ``window`` must be multiples of ``scale`` (its corners fall on LR pixel corners).

    Raises:
        LamError: one line naming the window, the SR size and what is expected.
    """
    for name, value in (("x", x), ("y", y), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise LamError(f"window {name}: expected an integer number of SR pixels, got {value!r}")
    h, w = lr_size
    sh, sw = h * scale, w * scale
    where = f"window x={x}, y={y}, size={window} on the {sw}x{sh} SR image (x = column, y = row)"
    if window < 1:
        raise LamError(f"{where}: the size must be at least 1")
    if strict and (x < 0 or y < 0 or x + window > sw or y + window > sh):
        raise LamError(f"{where}: the window must lie inside the image (with size {window}: x in "
                       f"0..{sw - window}, y in 0..{sh - window})")  # fmt: skip
    if x < 0 or y < 0 or x >= sw - 1 or y >= sh - 1:
        raise LamError(f"{where}: the window is outside the image (x must be in 0..{sw - 2}, y in 0..{sh - 2})")
    if strict and scale > 1 and (x % scale or y % scale or window % scale):
        raise LamError(f"{where}: x, y and size must be multiples of the scale {scale} (aligned to LR pixels)")
    return x, y, min(window, sw - 1 - x), min(window, sh - 1 - y)


def _min_side(pad_multiple: int, l: int) -> int:
    """The smallest LR side LAM accepts: one network window, and room for the blur kernel's mirrored border."""
    return max(pad_multiple, l // 2 + 1, 2)


def _network_facts(net: nn.Module) -> tuple[int, int, torch.device]:
    scale = getattr(net, "scale", None)
    if scale is None:
        raise LamError(f"{type(net).__name__}: LAM needs the network's 'scale' attribute (output/input size ratio)")
    try:
        device = next(net.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return int(scale), int(getattr(net, "pad_multiple", 1)), device


def _check_path(sigma: float, fold: int, l: int) -> None:
    if not (isinstance(fold, int) and fold >= 1):
        raise LamError(f"fold: expected a positive integer number of path steps, got {fold!r}")
    if not (isinstance(l, int) and l >= 1):
        raise LamError(f"l: expected a positive integer kernel size, got {l!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise LamError(f"sigma: expected a finite width >= 0, got {sigma!r}")


def lam(
    net: nn.Module,
    lr: Tensor,
    x: int,
    y: int,
    window: int = 16,
    sigma: float = 1.2,
    fold: int = 50,
    l: int = 9,
    *,
    batch: int = 1,
    strict: bool = False,
    progress: bool = False,
    keep_steps: Sequence[int] = (),
) -> LamResult:
    """Local Attribution Map of ``net`` for the SR window at column ``x``, row ``y`` (see the module docstring).

    Args:
        net: a super-resolution (or restoration, scale 1) network with a ``scale`` attribute; it runs in eval mode
            (its mode is restored afterwards) on the device of its parameters, in float32.
        lr: ``(3, H, W)`` or ``(1, 3, H, W)`` RGB LR input in [0, 1].
        x, y: column and row of the window's top-left corner, in SR pixels.
        window: side of the square window in SR pixels (official default 16).
        sigma, fold, l: widest blur of the path, number of path steps, blur kernel size (defaults: the demo's).
        batch: path steps per forward/backward pass (memory grows linearly with it; results do not depend on it
            beyond float rounding).
        strict: also refuse windows running past the image or not aligned to the scale (see :func:`check_window`);
            the default accepts every window the official code accepts.
        progress: show a tqdm progress bar over the path steps.
        keep_steps: path steps whose input gradient ``g_i`` is returned in ``LamResult.step_grads``.

    Raises:
        LamError: unusable window, image too small for the network or the blur kernel, bad path parameters.
    """
    img = _as_batch(lr)
    scale, multiple, device = _network_facts(net)
    _check_path(sigma, fold, l)
    if not (isinstance(batch, int) and batch >= 1):
        raise LamError(f"batch: expected a positive integer number of path steps per pass, got {batch!r}")
    h, w = img.shape[-2:]
    need = _min_side(multiple, l)
    if min(h, w) < need:
        raise LamError(
            f"lr: the {w}x{h} image is too small for {type(net).__name__} and the {l}x{l} blur kernel "
            f"(at least {need}x{need} LR pixels)"
        )
    box = check_window((h, w), scale, x, y, window, strict=strict)
    keep = sorted({int(i) for i in keep_steps})
    if any(i < 0 or i >= fold for i in keep):
        raise LamError(f"keep_steps: path steps must be in 0..{fold - 1}, got {keep}")

    from restore.engine.padding import pad_bottom_right

    img = img.detach().to(device=device, dtype=torch.float32)
    total = torch.zeros_like(img[0])
    objective = torch.zeros(fold, dtype=torch.float64)
    step_grads: dict[int, Tensor] = {}
    sr_last = None
    was_training = net.training
    net.eval()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=fold, desc="LAM path", unit="step", leave=False)
    try:
        with torch.enable_grad():
            for start in range(0, fold, batch):
                steps = range(start, min(start + batch, fold))
                images, derivatives = blur_path(img, sigma, fold, l, steps)
                images.requires_grad_(True)
                padded, _ = pad_bottom_right(images, multiple)
                sr = net(padded)[..., : h * scale, : w * scale]
                values = attribution_objective(sr, x, y, window)
                (grads,) = torch.autograd.grad(values.sum(), images)
                grads = torch.where(torch.isnan(grads), torch.zeros_like(grads), grads)  # as the official code
                for k, i in enumerate(steps):
                    total += grads[k] * derivatives[k]  # one step at a time, in path order
                    objective[i] = float(values[k].detach())
                    if i in keep:
                        step_grads[i] = grads[k].detach().cpu()
                if steps[-1] == fold - 1:
                    sr_last = sr[-1:].detach()
                if bar is not None:
                    bar.update(len(steps))
    finally:
        net.train(was_training)
        if bar is not None:
            bar.close()

    attribution = (total / fold).cpu()
    saliency, raw = saliency_map(attribution)
    g = gini(saliency)
    params = {
        "x": int(x),
        "y": int(y),
        "window": int(window),
        "box_xywh": list(box),
        "sigma": float(sigma),
        "fold": int(fold),
        "l": int(l),
        "scale": scale,
        "lr_hw": [int(h), int(w)],
        "sr_hw": [int(h) * scale, int(w) * scale],
        "batch": int(batch),
        "objective": "sum over the window of the SR gradient magnitude (attr_grad, reduce=sum)",
        "path": "Gaussian blur path",
        "eval_mode": True,
    }
    return LamResult(
        attribution=attribution,
        saliency=saliency,
        saliency_abs=raw,
        gini=g,
        di=diffusion_index(g),
        sr=sr_last.float().cpu(),
        objective=objective,
        box=box,
        params=params,
        step_grads=step_grads,
    )
