"""``restore export``: a checkpoint to a verified ONNX model.

    restore export --weights W.pth -o model.onnx [--opt net.yml] [--tile N [--dynamic]]
        [--precision fp32|fp16|bf16] [--opset K]

Without ``--tile`` the model takes any height and width; ``--tile N`` makes it take only N x N inputs (with
``--dynamic``, N is only the size it is traced and verified at).

Exit status: 0 written and verified, 1 verification failed (nothing left behind), 2 unusable weights, options
or output path, or the ONNX packages are missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from restore.engine.forward import PRECISIONS

__all__ = ["build_parser", "main"]


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def build_parser(prog: str = "restore export") -> argparse.ArgumentParser:
    from restore.commands.common import PARAM_KEY_HELP, CommandParser
    from restore.export.onnx import DEFAULT_OPSET, opset_range

    parser = CommandParser(
        prog=prog,
        description="Export a checkpoint to ONNX, verified in ONNX Runtime.",
        exit_statuses="Exit status: 0 written and verified; 1 verification failed (nothing left behind); 2 unusable "
        "weights, flags or output path, or the ONNX packages are missing; 130 interrupted.",
    )
    parser.add_argument("--weights", required=True, type=Path, help="checkpoint (.pth/.pt/.safetensors)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="ONNX file to write (its folder must exist)")
    parser.add_argument("--opt", type=Path, help="YAML whose network_g builds the network (default: detect)")
    parser.add_argument("--param-key", default=None, help=PARAM_KEY_HELP)
    tile_help = "fixed input side N x N (rounded up to the pad multiple); default: any height and width"
    parser.add_argument("--tile", type=_positive, help=tile_help)
    parser.add_argument("--dynamic", action="store_true",
                        help="with --tile: keep height and width dynamic, trace and verify at N")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default) or fp16; bf16 is refused (ORT on CPU cannot run it)")  # fmt: skip
    opset_help = f"ONNX opset, {opset_range()} (default {DEFAULT_OPSET})"
    parser.add_argument("--opset", type=_positive, default=DEFAULT_OPSET, help=opset_help)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "restore export") -> int:
    """Parse ``argv``, export and verify; returns the exit status (see the module docstring)."""
    args = build_parser(prog).parse_args(argv)
    from restore.commands.common import load_weights
    from restore.engine.loading import ModelLoadError, network_options_from_yaml
    from restore.export.onnx import ExportError, VerificationError, to_onnx
    from restore.export.runtime import OnnxSetupError

    try:
        network_g = network_options_from_yaml(args.opt) if args.opt else None
        model = load_weights(args.weights, args.param_key, network_g)
        report = to_onnx(
            model.net,
            args.output,
            tile=args.tile,
            dynamic=True if args.dynamic else None,
            precision=args.precision,
            opset=args.opset,
            network_g=model.network_g,
        )
    except (ModelLoadError, ExportError, OnnxSetupError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except VerificationError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    size = "dynamic height/width" if report.tile_size is None else f"{report.tile_size}x{report.tile_size} input"
    for name, value in report.differences.items():
        print(f"{prog}: ONNX Runtime vs PyTorch on the {name}: max abs difference {value:.2e} "
              f"(tolerance {report.tolerance:g})")  # fmt: skip
    for name, count in report.tie_flips.items():
        print(f"{prog}: {count} top-k selection(s) between near-tied scores differ on the {name}; compared with "
              "PyTorch replaying them")  # fmt: skip
    print(f"{prog}: wrote {report.path} ({model.network_g['type']}, {size}, {args.precision})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
