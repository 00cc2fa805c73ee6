"""Training logs: console + ``train_<name>.log`` on rank 0, per-window averages, optional TensorBoard/wandb."""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOGGER_NAME = "restore.train"
_FORMAT = "%(asctime)s %(levelname)s: %(message)s"


def setup_logger(log_file: str | Path | None, is_main: bool = True) -> logging.Logger:
    """The ``restore.train`` logger: INFO to stderr and (appending) to ``log_file`` on the main rank, warnings only
    elsewhere. Handlers from a previous call in the same process are replaced."""
    close_logger()
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if is_main and log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger


def log_to_file(logger: logging.Logger, message: str) -> None:
    """``message`` at INFO level to the log file only (the terminal stays short: e.g. the full option dump)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def close_logger() -> None:
    """Detach and close the handlers that :func:`setup_logger` installed."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class LogWindow:
    """Averages of the loss terms and timings since the last printed line."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.iter_time = 0.0
        self.data_time = 0.0

    def add(self, logs: Mapping[str, float], iter_time: float, data_time: float) -> None:
        for name, value in logs.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1
        self.iter_time += iter_time
        self.data_time += data_time

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}

    def seconds_per_iter(self) -> float:
        return self.iter_time / max(1, self.count)


def format_iteration(
    name: str,
    epoch: int,
    iteration: int,
    lrs: list[float],
    losses: Mapping[str, float],
    seconds_per_iter: float,
    data_seconds: float,
    remaining_iters: int,
) -> str:
    """``[name][epoch:  1, iter:     100, lr:(1.000e-04,)] [eta: 0:01:40, time (data): 0.100 (0.002)] l_pix: ...``"""
    eta = datetime.timedelta(seconds=int(seconds_per_iter * remaining_iters))
    lr_text = ",".join(f"{lr:.3e}" for lr in lrs)
    terms = " ".join(f"{k}: {v:.4e}" for k, v in losses.items())
    return (
        f"[{name}][epoch:{epoch:3d}, iter:{iteration:8,d}, lr:({lr_text},)] "
        f"[eta: {eta}, time (data): {seconds_per_iter:.3f} ({data_seconds:.3f})] {terms}"
    )


class Trackers:
    """TensorBoard (``logger.use_tb_logger``, written to ``experiments/<name>/tb_logger``) and wandb
    (``logger.wandb.project``) when their packages exist.

    A missing package is reported once and then ignored: these are optional extras. Nothing is tracked for
    ``debug`` runs (BasicSR's convention) or on ranks other than 0.
    """

    def __init__(self, opt: Mapping[str, Any], logger: logging.Logger, is_main: bool) -> None:
        self.tb: Any = None
        self.wandb: Any = None
        log_opt = opt.get("logger") or {}
        name = str(opt.get("name"))
        if not is_main or "debug" in name:
            return
        if log_opt.get("use_tb_logger"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("note: logger.use_tb_logger is set but tensorboard is not installed; not logging to it")
            else:
                self.tb = SummaryWriter(log_dir=str(Path(opt["path"]["experiments_root"]) / "tb_logger"))
        wandb_opt = log_opt.get("wandb") or {}
        if wandb_opt.get("project"):
            try:
                import wandb
            except ImportError:
                logger.info("note: logger.wandb.project is set but wandb is not installed; not logging to it")
            else:
                resume_id = wandb_opt.get("resume_id")
                self.wandb = wandb.init(
                    project=wandb_opt["project"],
                    entity=wandb_opt.get("entity"),
                    name=name,
                    id=resume_id,
                    resume="allow" if resume_id else None,
                    config=dict(opt),
                )

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(dict(values), step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
