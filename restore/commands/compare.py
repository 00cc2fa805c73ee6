"""``restore compare --gt GT RESULT_DIR ... -o FIGS``: comparison figures and an index.html.

Parses the command line and calls :func:`restore.analysis.compare.compare_folders` (see there for what is written).
Exit status: 0 every matched image got a figure; 1 some were skipped; 2 unusable flags or folders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from restore.analysis.compare import PANEL_SIZE, Box, CompareError, compare_folders
from restore.analysis.figure_doc import FORMATS

__all__ = ["build_parser", "main"]


def _parse_box(text: str) -> Box:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four integers), got {text!r}")
    return Box(*(int(p) for p in parts))


def build_parser(prog: str = "restore compare") -> argparse.ArgumentParser:
    from restore.commands.common import CommandParser

    parser = CommandParser(
        prog=prog,
        description="Paper-style comparison figures (GT with a box, zoomed crops with PSNR/SSIM) and an index.html.",
        exit_statuses="Exit status: 0 done; 1 an image was skipped; 2 unusable flags or folders; 130 interrupted.",
    )
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULT_DIR", help="one folder per method")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth images")
    parser.add_argument("-o", "--output", required=True, type=Path, help="folder for the figures and index.html")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--box", type=_parse_box, help="x,y,w,h of the zoomed window (x = column of its left edge)")
    where.add_argument("--auto-box", action="store_true", help="window where the methods differ most (default)")
    parser.add_argument("--box-size", type=int, help="side of the --auto-box window (default about min(H, W) / 8)")
    parser.add_argument("--names", nargs="+", help="one label per result folder (default: folder names)")
    parser.add_argument("--crop-border", type=int, default=0, help="pixels ignored at each edge by the metrics")
    parser.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the BT.601 Y channel")
    parser.add_argument("--panel-size", type=int, default=PANEL_SIZE, help="side of each crop panel in pixels")
    parser.add_argument("--format", choices=FORMATS, default="png", help="figure file format (crops stay raster)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "restore compare") -> int:
    """Command-line entry point: 0 when every matched image got a figure, 1 when some were skipped, 2 on bad
    flags or folders."""
    args = build_parser(prog).parse_args(argv)
    if args.crop_border < 0:
        print(f"{prog}: error: --crop-border must be >= 0, got {args.crop_border}", file=sys.stderr)
        return 2
    try:
        result = compare_folders(
            args.gt, args.results, args.output, args.names, args.box, args.box_size, args.crop_border, args.y_channel,
            panel_size=args.panel_size, fmt=args.format,
        )  # fmt: skip
    except CompareError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(result.figures)} figures and {result.report}; skipped {len(result.skipped)} images")
    return 1 if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
