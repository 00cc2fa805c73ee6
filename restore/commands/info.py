"""``restore info WEIGHTS [--opt net.yml] [--param-key K]``: what a checkpoint holds.

Prints the file, the detected (or ``--opt``) architecture, its task, scale, pad multiple, whether float16 is safe,
the parameter count and the ``network_g`` options that rebuild it. Exit status: 0 done; 2 unusable weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "restore info") -> argparse.ArgumentParser:
    """The options of ``restore info``."""
    from restore.commands.common import PARAM_KEY_HELP, CommandParser

    parser = CommandParser(
        prog=prog, description="Show what a checkpoint holds.", exit_statuses="Exit status: 0 done; 2 unusable weights."
    )
    parser.add_argument("weights", help="checkpoint (.pth/.pt/.safetensors)")
    parser.add_argument("--opt", help="YAML whose network_g builds the network (default: detect)")
    parser.add_argument("--param-key", default=None, help=PARAM_KEY_HELP)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "restore info") -> int:
    """Parse ``argv`` and print the checkpoint's summary; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    from restore.commands.common import load_weights
    from restore.engine.forward import network_spec
    from restore.engine.loading import ModelLoadError, network_options_from_yaml, task_of

    try:
        network_g = network_options_from_yaml(args.opt) if args.opt else None
        model = load_weights(args.weights, args.param_key, network_g)
    except ModelLoadError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    spec = network_spec(model.net)
    source = "detected from the weights" if model.detected else f"from {args.opt}"
    print(f"file:         {args.weights}")
    print(f"architecture: {model.network_g['type']} ({source})")
    print(f"task:         {task_of(model.net)}")
    print(f"scale:        {spec.scale}")
    print(f"pad multiple: {spec.pad_multiple}")
    print(f"fp16 safe:    {'yes' if spec.supports_fp16 else 'no (use bf16)'}")
    print(f"parameters:   {model.parameters:,}")
    print("network_g:")
    print(
        "  " + yaml.safe_dump(model.network_g, sort_keys=False, default_flow_style=None).rstrip().replace("\n", "\n  ")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
