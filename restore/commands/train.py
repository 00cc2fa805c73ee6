"""``restore train -opt options/train/X.yml [--auto_resume] [--debug] [--force_yml ...] [--launcher pytorch]``.

Also ``python restore/train.py``, and under ``torchrun --nproc_per_node=N restore/train.py ... --launcher pytorch``.
Loads the option file, runs the pre-flight of :func:`restore.models.runner.preflight` (every problem of the file,
its paths and data as one ``restore train: error:`` line each, exit 2, before anything is created under
``experiments/``), then :func:`restore.models.runner.train`. Exit status: 0 done, 1 failed while training (data,
non-finite loss), 2 unusable options or weights, 130 interrupted (``--auto_resume`` continues).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from restore.models import dist as dist_utils
from restore.models.dist import DistInfo
from restore.models.runner import (
    USAGE_ERRORS,
    USER_ERRORS,
    TrainingInterrupted,
    load_train_options,
    preflight,
    train,
)
from restore.models.train_log import close_logger
from restore.utils.errors import error_line
from restore.utils.interrupt import EXIT_INTERRUPTED, sigterm_as_interrupt
from restore.utils.options import OptionsError
from restore.utils.threads import set_threads

__all__ = ["PROG", "build_parser", "main", "parse_args"]

PROG = "restore train"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    """The options of ``restore train``."""
    from restore.commands.common import CommandParser

    parser = CommandParser(
        prog="restore train",
        description="Train or fine-tune a restoration network. A pre-flight pass reports every problem of the "
        "option file, its paths and data before anything is created under experiments/.",
        exit_statuses="Exit status: 0 done; 1 training failed (data, non-finite loss); 2 unusable options, flags or "
        "weights (every pre-flight problem); 130 interrupted (--auto_resume continues).",
    )
    parser.add_argument("-opt", "--opt", required=True, help="BasicSR-format training option file (.yml)")
    parser.add_argument("--launcher", choices=dist_utils.LAUNCHERS, default="none", help="'pytorch' under torchrun")
    parser.add_argument("--auto_resume", action="store_true", help="continue from the newest complete state")
    parser.add_argument("--debug", action="store_true", help="debug_ name, log every iteration, save/validate every 8")
    parser.add_argument(
        "--force_yml", nargs="+", default=[], help="overrides such as train:total_iter=1000 (default: none)"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _report_failure(err: BaseException, dist: DistInfo) -> None:
    """One line on stderr; the full traceback goes to the log file only (if the log is open)."""
    message = error_line(err)
    where = f" (rank {dist.rank})" if dist.enabled else ""
    for line in getattr(err, "problems", None) or [message]:
        print(f"{PROG}: error{where}: {line}", file=sys.stderr)
    logger = logging.getLogger("restore.train")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "training failed", (), sys.exc_info())
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``restore train`` and ``restore/train.py``); returns the exit status.

    A pre-flight pass reports every problem of the option file, its paths and data (one ``restore train: error:``
    line each, exit 2) before anything is created under ``experiments/`` or an earlier run is archived.
    """
    args = parse_args(argv)
    if args.local_rank is not None:
        print("note: --local_rank is ignored; ranks come from torchrun's environment (LOCAL_RANK)", file=sys.stderr)
    try:
        set_threads()
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    dist = dist_utils.init_distributed(args.launcher)
    try:
        with sigterm_as_interrupt():
            problems: list[str] = []
            opt = load_train_options(args.opt, args.force_yml, args.debug, problems)
            found, resume, notes = preflight(opt, args.auto_resume, dist)
            problems += found
            if problems:
                raise OptionsError(problems)
            train_set = (opt.get("datasets") or {}).get("train") or {}
            set_threads(workers=int(train_set.get("num_worker_per_gpu") or 0))  # one core per DataLoader worker
            train(opt, dist, auto_resume=args.auto_resume, option_file=args.opt, resume=resume, notes=notes)
    except KeyboardInterrupt as err:
        message = err.args[0] if isinstance(err, TrainingInterrupted) else "interrupted before training started"
        print(f"{PROG}: {message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        _report_failure(err, dist)
        return 2 if isinstance(err, USAGE_ERRORS) else 1
    finally:
        close_logger()
        dist_utils.shutdown(dist)
    return 0


if __name__ == "__main__":
    sys.exit(main())
