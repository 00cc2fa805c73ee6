"""``restore lam``: Local Attribution Maps of one or more models for one window of one image.

    restore lam -i img.png --window x,y[,size] -o lam/ [--weights W.pth] [--compare W2.pth ...] [--batch N]

``img.png`` is the LR input; ``x`` (column) and ``y`` (row) place the window's top-left corner in SR pixels.
For each model ``NAME`` (the weights' file stem, or ``--names``) it writes into the output folder:

* ``<image>_<NAME>_lam.png``    the attribution map over the LR input as LAM displays it (``S / max S`` through the
  seismic colormap, 0 white; enlarged by ``--zoom``);
* ``<image>_<NAME>_lam_stretched.png``  the same map contrast-stretched (not the official display);
* ``<image>_<NAME>_figure.png`` the labelled figure: input with the window, both maps, blend; DI in the caption;
* ``<image>_<NAME>_blend.png``  that map blended with the bicubic-enlarged input (``--alpha``);
* ``<image>_<NAME>_kde.png``    the blend of the map's kernel density estimate (the area of influence);
* ``<image>_<NAME>_sr.png``     the SR output with the window's box;

and ``<image>_lam.json`` (DI, Gini and every parameter, per model) and, with ``--compare``,
``<image>_lam_compare.png`` (the input with the window, then every model's blend labelled with its DI).
All files are written atomically. Exit status 2 for unusable options, weights, images or windows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = ["build_parser", "main"]

PROG = "restore lam"


def _parse_window(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected x,y or x,y,size in SR pixels (integers), got {text!r}")
    return values[0], values[1], values[2] if len(values) == 3 else 16


def build_parser() -> argparse.ArgumentParser:
    from restore.commands.common import PARAM_KEY_HELP, CommandParser

    parser = CommandParser(
        prog=PROG,
        description="Local Attribution Maps (LAM) of super-resolution models.",
        exit_statuses="Exit status: 0 done; 2 unusable options, flags, weights, images or windows; 130 interrupted.",
    )
    parser.add_argument("-i", "--input", required=True, help="LR input image")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--window",
        required=True,
        type=_parse_window,
        help="x,y[,size]: top-left column, row and side in SR pixels (default size: 16)",
    )
    parser.add_argument("--weights", help="checkpoint of the model (default: the bundled x4 demo model)")
    parser.add_argument("--opt", help="YAML whose network_g builds the --weights model (default: detect)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="W", help="more checkpoints, shown side by side")
    parser.add_argument("--names", nargs="+", help="one name per model (default: the weights' file stems)")
    parser.add_argument("--param-key", default=None, help=PARAM_KEY_HELP)
    parser.add_argument("--sigma", type=float, default=1.2, help="widest blur of the path (official 1.2)")
    parser.add_argument("--fold", type=int, default=50, help="number of path steps (official 50)")
    parser.add_argument("--l", type=int, default=9, help="blur kernel size (official 9)")
    parser.add_argument("--batch", type=int, default=1, help="path steps per forward/backward pass (memory)")
    parser.add_argument("--zoom", type=int, help="enlargement of the maps (default: the scale)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the input in the blends (official 0.5)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    parser.add_argument(
        "--loose-window",
        action="store_true",
        help="accept windows not aligned to the scale or running past the border, as the official demo does",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


class _Fail(Exception):
    """A one-line error for the user (exit status 2)."""


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from restore.utils.files import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise _Fail(f"{path}: cannot write the image")


def _write_json(path: Path, data: dict) -> None:
    from restore.utils.files import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def _models(args: argparse.Namespace) -> list[tuple[str, str, dict | None]]:
    """``(name, weights, network_g or None)`` per model; ``--opt`` applies to ``--weights`` only."""
    from restore.engine.loading import network_options_from_yaml

    if args.opt and not args.weights:
        raise _Fail("--opt needs --weights (the bundled model has its own options)")
    if args.weights:
        first = (args.weights, network_options_from_yaml(args.opt) if args.opt else None)
    else:
        from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS

        print(f"{PROG}: no --weights given, using the bundled x4 demo model {DEFAULT_WEIGHTS}", file=sys.stderr)
        first = (str(DEFAULT_WEIGHTS), network_options_from_yaml(DEFAULT_OPTIONS))
    entries = [first, *((w, None) for w in args.compare)]
    names = args.names or [Path(w).stem for w, _ in entries]
    if len(names) != len(entries):
        raise _Fail(f"--names: expected {len(entries)} names (one per model), got {len(names)}")
    if len(set(names)) != len(names):
        raise _Fail(f"--names: model names must differ, got {names} (pass --names)")
    return [(n, str(w), g) for n, (w, g) in zip(names, entries)]


def _run(args: argparse.Namespace) -> int:
    from restore.analysis import lam_figures as fig
    from restore.analysis.lam import check_window, lam
    from restore.commands.common import load_weights
    from restore.data.image_io import read_image
    from restore.engine.loading import default_device

    for flag, value in (("--batch", args.batch), ("--fold", args.fold), ("--l", args.l)):
        if value < 1:
            raise _Fail(f"{flag}: expected a positive integer, got {value}")
    if args.zoom is not None and args.zoom < 1:
        raise _Fail(f"--zoom: expected a positive integer, got {args.zoom}")
    if not 0.0 <= args.alpha <= 1.0:
        raise _Fail(f"--alpha: expected a weight in [0, 1], got {args.alpha}")
    try:
        device = torch.device(args.device) if args.device else default_device()
    except RuntimeError as err:
        raise _Fail(f"--device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _Fail(f"--device {args.device}: CUDA is not available")

    image = read_image(args.input)
    if image.alpha is not None:
        print(f"{PROG}: {args.input}: the alpha channel is ignored", file=sys.stderr)
    lr = torch.from_numpy(np.ascontiguousarray(image.rgb)).permute(2, 0, 1).float()
    lr_u8 = fig.to_uint8(image.rgb)
    x, y, size = args.window
    out_dir = Path(args.output)
    stem = Path(args.input).stem

    models = _models(args)
    loaded = []
    for name, weights, network_g in models:
        model = load_weights(weights, args.param_key, network_g)
        loaded.append((name, weights, model))
    scales = {int(getattr(m.net, "scale", 1)) for _, _, m in loaded}
    if len(scales) != 1:
        raise _Fail(f"--compare: every model must have the same scale, got {sorted(scales)}")
    scale = scales.pop()
    box = check_window(tuple(lr.shape[-2:]), scale, x, y, size, strict=not args.loose_window)
    if box[2:] != (size, size):
        print(f"{PROG}: the window is cut to {box[2]}x{box[3]} at the border of the SR gradient map", file=sys.stderr)
    zoom = args.zoom or scale

    lr_big = cv2.resize(lr_u8, (lr_u8.shape[1] * zoom, lr_u8.shape[0] * zoom), interpolation=cv2.INTER_CUBIC)
    zoom_box = [round(v * zoom / scale) for v in box]
    report: dict = {
        "image": str(args.input),
        "lr_hw": list(lr.shape[-2:]),
        "scale": scale,
        "window": {"x": x, "y": y, "size": size, "box_xywh": list(box), "coords": "x = column, y = row, SR pixels"},
        "sigma": args.sigma,
        "fold": args.fold,
        "l": args.l,
        "batch": args.batch,
        "alpha": args.alpha,
        "zoom": zoom,
        "device": str(device),
        "eval_mode": True,
        "procedure": "LAM (Gu & Dong 2021): gradient-magnitude objective over the SR window, Gaussian blur path, "
        "path-integrated gradients, |channel sum| saliency, DI = (1 - Gini) * 100",
        "models": [],
    }
    panels = []
    for name, weights, model in loaded:
        net = model.net.to(device)
        start = time.perf_counter()
        result = lam(
            net, lr, x, y, size, args.sigma, args.fold, args.l,
            batch=args.batch, strict=not args.loose_window, progress=not args.quiet,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        net.cpu()
        vis = fig.heat_map(result.saliency, zoom)
        files = {
            "lam": f"{stem}_{name}_lam.png",
            "stretched": f"{stem}_{name}_lam_stretched.png",
            "blend": f"{stem}_{name}_blend.png",
            "kde": f"{stem}_{name}_kde.png",
            "sr": f"{stem}_{name}_sr.png",
            "figure": f"{stem}_{name}_figure.png",
        }
        mixed = fig.blend(vis, lr_u8, args.alpha)
        stretched = fig.stretched_heat_map(result.saliency, zoom)
        _write_png(out_dir / files["lam"], vis)
        _write_png(out_dir / files["stretched"], stretched)
        tiles = [fig.draw_box(t, zoom_box) for t in (lr_big, vis, stretched, mixed)]
        figure = fig.model_figure(*tiles, name, result.di)
        _write_png(out_dir / files["figure"], figure)
        _write_png(out_dir / files["blend"], mixed)
        _write_png(out_dir / files["kde"], fig.blend(fig.kde_heat_map(result.saliency, zoom), lr_u8, args.alpha))
        _write_png(out_dir / files["sr"], fig.draw_box(fig.to_uint8(result.sr), box))
        panels.append((name, fig.draw_box(mixed, zoom_box), result.di))
        report["models"].append(
            {
                "name": name,
                "weights": weights,
                "network_g": model.network_g,
                "di": result.di,
                "gini": result.gini,
                "seconds": round(seconds, 3),
                "files": files,
            }
        )
        print(f"{name}: DI {result.di:.4f} (Gini {result.gini:.6f}), {seconds:.1f} s", file=sys.stderr)
    if len(loaded) > 1:
        figure = fig.compare_figure(fig.draw_box(lr_big, zoom_box), panels)
        report["compare_figure"] = f"{stem}_lam_compare.png"
        _write_png(out_dir / report["compare_figure"], figure)
    _write_json(out_dir / f"{stem}_lam.json", report)
    print(f"{PROG}: wrote {out_dir / (stem + '_lam.json')}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``restore lam``; returns the exit status (0, or 2 with a one-line message for unusable input)."""
    from restore.analysis.lam import LamError
    from restore.data.image_io import ImageReadError
    from restore.engine.loading import ModelLoadError

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run(args)
    except (_Fail, LamError, ImageReadError, ModelLoadError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
