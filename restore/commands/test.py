"""``restore test -opt options/test/X.yml [--force_yml KEY:SUBKEY=VALUE ...]``: run a benchmark.

Parses the command line, runs the pre-flight of :func:`restore.evaluate.preflight` after loading the option file
(every key, type, weights file and dataset checked; every problem reported as one ``restore test: error:`` line,
exit 2, before anything is created), then :func:`restore.evaluate.run_benchmark`. Also ``python restore/test.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from restore.commands.common import CommandParser, report_errors

__all__ = ["PROG", "build_parser", "main"]

PROG = "restore test"


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="restore test",
        description="Evaluate a network on the test datasets of a BasicSR-format option file. A pre-flight pass "
        "reports every problem of the file, its weights and data before anything is created.",
        exit_statuses="Exit status: 0 done; 1 an image failed while running; 2 unusable options, flags or weights "
        "(every pre-flight problem, an unknown metric type); 130 interrupted.",
    )
    parser.add_argument("-opt", "--opt", required=True, help="option file, e.g. options/test/HAT_SRx4.yml")
    parser.add_argument(
        "--force_yml",
        nargs="+",
        default=[],
        metavar="KEY:SUBKEY=VALUE",
        help="override options, e.g. val:save_img=true (default: none)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: from num_gpu and CUDA)")
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="evaluate network_g randomly initialised when path.pretrain_network_g is empty (refused otherwise)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (errors are one line each on stderr).

    A pre-flight pass checks the keys and types of the option file, the weights, the datasets' folders and the
    metric types, and reports every problem it finds before anything is created. 0: done; 2: unusable options,
    weights or ``--device`` (all pre-flight problems, a refused precision, an unreadable checkpoint, a device this
    machine lacks); 1: an input failed while running (a size mismatch; out of memory even after re-tiling); 130:
    interrupted.
    """
    from restore.checkpoint import CheckpointError
    from restore.engine.loading import check_device
    from restore.evaluate import USER_ERRORS, error_line, preflight, run_benchmark
    from restore.utils.interrupt import EXIT_INTERRUPTED, sigterm_as_interrupt
    from restore.utils.options import OptionsError, load_options

    args = build_parser().parse_args(argv)
    try:
        if args.device is not None:
            check_device(args.device)  # before anything is loaded
    except ValueError as err:
        report_errors(PROG, [str(err)])
        return 2
    problems: list[str] = []
    try:
        with sigterm_as_interrupt():
            opt = load_options(args.opt, force_yml=args.force_yml, is_train=False, problems=problems)
            problems += preflight(opt, args.allow_random_weights, args.opt)
            if problems:
                report_errors(PROG, problems)
                return 2
            run_benchmark(opt, device=args.device, allow_random_weights=args.allow_random_weights, source=args.opt)
    except (OptionsError, CheckpointError) as err:
        report_errors(PROG, getattr(err, "problems", None) or [error_line(err)])
        return 2
    except USER_ERRORS as err:
        report_errors(PROG, [error_line(err)])
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
