"""The training loop behind ``restore train`` (:mod:`restore.commands.train`): checkpoints, resumption, validation.

Usage::

    python restore/train.py -opt options/train/X.yml [--auto_resume] [--debug] [--force_yml train:total_iter=1000]
    torchrun --nproc_per_node=4 restore/train.py -opt X.yml --launcher pytorch [--auto_resume]

Every ``logger.save_checkpoint_freq`` iterations the weights go to ``models/net_g_<iter>.pth`` and
``net_g_latest.pth`` (GAN models: also ``net_d_<iter>.pth`` and ``net_d_latest.pth``) and the training state to
``training_states/<iter>.state`` (see ``restore.models.training_state``). ``--auto_resume`` continues from the
newest complete state; with the same options, a resumed run replays the uninterrupted one exactly (same data
order, augmentations and random draws).

A fresh run over an existing ``experiments/<name>/`` moves it aside to ``<name>_archived_<time>`` and says so; a
run that fails before its first iteration (options, data, pretrained weights) puts everything back as it was.
Exit status: 0 done, 1 failed while training (data, non-finite loss), 2 unusable options or weights, 130
interrupted (Ctrl-C or SIGTERM; saved states are complete files, ``--auto_resume`` continues from the newest).
"""

from __future__ import annotations

import logging
import random
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from restore.checkpoint import CheckpointError
from restore.data.loader import build_dataset, build_train_loader, build_val_loader, prefetch
from restore.data.sampler import TrainSampler
from restore.models import dist as dist_utils
from restore.models.batch_augment import ProgressivePatches
from restore.models.dist import DistInfo
from restore.models.restoration import RestorationModel, build_model
from restore.models.train_log import (
    LogWindow,
    Trackers,
    close_logger,
    format_iteration,
    log_to_file,
    setup_logger,
)
from restore.models.training_state import (
    ResumePoint,
    capture_rng,
    find_resume_point,
    load_resume_point,
    restore_rng,
    save_state,
    state_path,
)
from restore.models.validation import BestMetrics, validate
from restore.utils.errors import error_line
from restore.utils.files import atomic_path
from restore.utils.options import OptionsError, load_options

__all__ = ["USAGE_ERRORS", "USER_ERRORS", "TrainingInterrupted", "load_train_options", "preflight", "train"]

#: Errors with a self-explanatory one-line message: printed without a traceback (which goes to the log file).
USER_ERRORS = (
    OptionsError,
    CheckpointError,
    FloatingPointError,
    FileNotFoundError,
    NotImplementedError,
    ImportError,
    KeyError,
    ValueError,
)
#: Of those, the ones meaning unusable options or weights (exit status 2).
USAGE_ERRORS = (OptionsError, CheckpointError)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training; ``args[0]`` is the one-line report (iteration, last saved state)."""


def load_train_options(
    path: str, force_yml: Sequence[str], debug: bool, problems: list[str] | None = None
) -> dict[str, Any]:
    """Validated options; ``debug`` adds BasicSR's debug overrides (``debug_`` name, frequent logs and saves).

    With ``problems``, key and type problems are collected there instead of raised (see ``load_options``).
    """
    if not debug:
        return load_options(path, force_yml=force_yml, is_train=True, problems=problems)
    opt = load_options(path, force_yml=force_yml, is_train=True, problems=[])
    name = str(opt.get("name") or "run")
    extra = [f"name={name if name.startswith('debug') else 'debug_' + name}"]
    extra += ["logger:print_freq=1", "logger:save_checkpoint_freq=8"]
    if opt.get("val"):
        extra.append("val:val_freq=8")
    return load_options(path, force_yml=[*force_yml, *extra], is_train=True, problems=problems)


def training_device(opt: Mapping[str, Any], dist: DistInfo) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available and ``num_gpu`` is not 0, else the CPU."""
    if torch.cuda.is_available() and opt.get("num_gpu") != 0:
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Progress:
    """Where training stands: optimizer steps done, current epoch, loader batches consumed in that epoch."""

    iteration: int = 0
    epoch: int = 0
    epoch_batches: int = 0


class BatchStream:
    """Endless training batches that record their position in ``progress`` (epochs roll over automatically)."""

    def __init__(
        self, loader: Any, sampler: TrainSampler, progress: Progress, prefetch_mode: str | None, device: torch.device
    ) -> None:
        self.loader, self.sampler, self.progress = loader, sampler, progress
        self.prefetch_mode, self.device = prefetch_mode, device
        self.batch_size = loader.batch_size
        self._iterator: Iterator[Any] | None = None

    def next(self) -> dict[str, Any]:
        for _ in range(2):
            if self._iterator is None:
                start = min(self.progress.epoch_batches * self.batch_size, self.sampler.num_samples)
                self.sampler.set_epoch(self.progress.epoch, start=start)
                self._iterator = prefetch(iter(self.loader), self.prefetch_mode, self.device)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.progress.epoch += 1
                self.progress.epoch_batches = 0
                self._iterator = None
                continue
            self.progress.epoch_batches += 1
            return batch
        raise RuntimeError("training loader yielded no batch in a whole epoch")


class Trainer:
    """Holds what the loop needs and does the periodic work (log, save, validate). Built by :func:`train`."""

    def __init__(self, opt: dict[str, Any], dist: DistInfo, logger: logging.Logger, resume: ResumePoint | None):
        self.opt, self.dist, self.logger = opt, dist, logger
        self.device = training_device(opt, dist)
        self.name = str(opt.get("name") or "run")
        self.paths = opt["path"]
        state = resume.state if resume is not None else {}
        seed = state.get("seed", opt.get("manual_seed"))
        if seed is None:
            seed = dist_utils.broadcast_object(random.SystemRandom().randint(1, 10000), dist)
        self.seed = int(seed)
        seed_everything(self.seed + dist.rank)

        datasets = opt.get("datasets") or {}
        if "train" not in datasets:
            raise OptionsError("datasets.train: missing (the training set)")
        self.train_opt_ds = datasets["train"]
        if self.train_opt_ds.get("prefetch_mode") == "cuda" and self.device.type != "cuda":
            raise ValueError(
                f"datasets.train.prefetch_mode: 'cuda' needs a CUDA device, training runs on {self.device}"
            )
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        train_set = build_dataset(self.train_opt_ds)
        self.loader, self.sampler = build_train_loader(
            train_set, self.train_opt_ds, world_size=dist.world_size, rank=dist.rank, seed=self.seed
        )
        self.progressive = (
            ProgressivePatches(self.train_opt_ds, int(opt.get("scale") or 1))
            if ProgressivePatches.enabled(self.train_opt_ds)
            else None
        )
        self.val_loaders = self._val_loaders(datasets) if dist.is_main else []
        self.model: RestorationModel = build_model(opt, self.device, dist, logger)
        self.settings = self.model.settings
        self.best = BestMetrics(state.get("best_metrics"))
        self.progress = Progress(
            int(state.get("iter", 0)), int(state.get("epoch", 0)), int(state.get("epoch_batches", 0))
        )
        self._log_statistics(len(train_set))
        if resume is not None:
            self._resume(resume)
        self.trackers = Trackers(opt, logger, dist.is_main)

    def _val_loaders(self, datasets: Mapping[str, Any]) -> list[tuple[str, Any]]:
        loaders = []
        for key, ds_opt in datasets.items():
            phase = str(key).split("_")[0]
            if phase == "train":
                continue
            if phase not in ("val", "test"):
                raise OptionsError(f"datasets.{key}: unknown phase {phase!r}; use train, val_<n> or test_<n>")
            dataset = build_dataset(ds_opt)
            loaders.append((str(ds_opt.get("name") or key), build_val_loader(dataset, ds_opt)))
            self.logger.info(f"validation set {ds_opt.get('name') or key}: {len(dataset)} image(s)")
        return loaders

    def _log_statistics(self, num_images: int) -> None:
        ds, s = self.train_opt_ds, self.settings
        per_epoch = self.sampler.num_samples // self.loader.batch_size
        steps_per_epoch = max(1, per_epoch // s.accumulate_grad_batches)
        self.logger.info(
            f"training set {ds.get('name')}: {num_images} image(s) x enlarge ratio "
            f"{ds.get('dataset_enlarge_ratio') or 1}; batch {ds['batch_size_per_gpu']} per process x "
            f"{self.dist.world_size} process(es) x "
            f"{s.accumulate_grad_batches} accumulated; {steps_per_epoch} iteration(s) per epoch; "
            f"{s.total_iter} iterations (~{-(-s.total_iter // steps_per_epoch)} epochs); device {self.device}"
        )

    def _resume(self, resume: ResumePoint) -> None:
        self.model.load_network_state(resume.network)
        self.model.load_state_dict(resume.state["model"])
        rngs = resume.state.get("rng") or []
        if len(rngs) == self.dist.world_size:
            restore_rng(rngs[self.dist.rank])
        else:
            self.logger.warning(
                f"resume: the state holds random states for {len(rngs)} process(es), this run has "
                f"{self.dist.world_size}; continuing with fresh random states (data order is unaffected)"
            )
        self.logger.info(
            f"resumed from {resume.state_path} (iteration {self.progress.iteration}, epoch {self.progress.epoch})"
        )

    # ------------------------------------------------------------------------------------------- periodic

    def save(self) -> None:
        """Weights, then the training state (all ranks contribute their random states)."""
        it = self.progress.iteration
        rngs = dist_utils.gather_objects(capture_rng(), self.dist)
        if self.dist.is_main:
            models = Path(self.paths["models"])
            written = self.model.save_networks(models, it)
            for path in written:  # net_g_<iter>.pth -> net_g_latest.pth (and net_d_... for GAN models)
                with atomic_path(path.with_name(path.name.replace(f"_{it}.pth", "_latest.pth"))) as tmp:
                    shutil.copyfile(path, tmp)
            state = {
                "iter": it,
                "epoch": self.progress.epoch,
                "epoch_batches": self.progress.epoch_batches,
                "seed": self.seed,
                "world_size": self.dist.world_size,
                "model": self.model.state_dict(),
                "best_metrics": self.best.state_dict(),
                "rng": rngs,
            }
            save_state(state_path(self.paths["training_states"], it), state)
            self.logger.info(f"saved {', '.join(p.name for p in written)} and training state {it}.state")
        dist_utils.barrier(self.dist)

    def validate(self) -> None:
        if self.dist.is_main and self.val_loaders:
            val_opt = self.opt.get("val") or {}
            metrics = val_opt.get("metrics") or {}
            infer_kwargs = self._infer_kwargs()
            for name, loader in self.val_loaders:
                save_dir = Path(self.paths["visualization"]) if val_opt.get("save_img") else None
                values = validate(
                    self.model.eval_net,
                    loader,
                    metrics,
                    device=self.device,
                    infer_kwargs=infer_kwargs,
                    save_dir=save_dir,
                    save_suffix=str(self.progress.iteration),
                )
                self.best.update(name, values, metrics, self.progress.iteration)
                lines = [f"validation {name} at iteration {self.progress.iteration}:"]
                for metric, value in values.items():
                    best = self.best.get(name, metric)
                    lines.append(f"\t# {metric}: {value:.4f}\tbest: {best['val']:.4f} @ {best['iter']} iter")
                self.logger.info("\n".join(lines))
                self.trackers.scalars({f"metrics/{name}/{k}": v for k, v in values.items()}, self.progress.iteration)
        dist_utils.barrier(self.dist)

    def _infer_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"precision": self.opt.get("precision") or "fp32"}
        tile = self.opt.get("tile") or {}
        if tile.get("tile_size"):
            kwargs.update(tile=tile["tile_size"], tile_overlap=tile.get("tile_pad", 32))
            kwargs["tile_batch_size"] = tile.get("tile_batch_size") or 1
        return kwargs

    # ------------------------------------------------------------------------------------------- loop

    def run(self) -> None:
        log_opt = self.opt.get("logger") or {}
        print_freq = int(log_opt.get("print_freq") or 100)
        save_freq = log_opt.get("save_checkpoint_freq")
        val_freq = (self.opt.get("val") or {}).get("val_freq")
        total, k = self.settings.total_iter, self.settings.accumulate_grad_batches
        if self.progress.iteration >= total:
            self.logger.info(f"nothing to do: iteration {self.progress.iteration} >= train.total_iter {total}")
            return
        prefetch_mode = self.train_opt_ds.get("prefetch_mode")
        stream = BatchStream(self.loader, self.sampler, self.progress, prefetch_mode, self.device)
        window = LogWindow()
        self.logger.info(f"start training at epoch {self.progress.epoch}, iteration {self.progress.iteration}")
        start = time.perf_counter()
        saved_at = validated_at = -1
        while self.progress.iteration < total:
            tick = time.perf_counter()
            batches = [stream.next() for _ in range(k)]
            data_time = time.perf_counter() - tick
            it = self.progress.iteration + 1
            lrs = self.model.lr.apply(it)
            if self.progressive is not None:
                batches = [self.progressive(b, it) for b in batches]
            logs = self.model.train_step(batches, it)
            self.progress.iteration = it
            window.add(logs, time.perf_counter() - tick, data_time)
            if it % print_freq == 0 or it == total:
                self._print(window, lrs)
            if save_freq and it % save_freq == 0:
                self.save()
                saved_at = it
            if self.val_loaders and val_freq and it % val_freq == 0:
                self.validate()
                validated_at = it
        if saved_at != total:
            self.save()
        if (self.opt.get("val") or {}).get("metrics") is not None and validated_at != total:
            self.validate()
        self.logger.info(f"end of training: {total} iterations in {time.perf_counter() - start:.1f} s")
        self.trackers.close()

    def _print(self, window: LogWindow, lrs: list[float]) -> None:
        losses = dist_utils.mean_over_ranks(window.means(), self.dist, self.device)
        line = format_iteration(
            self.name,
            self.progress.epoch,
            self.progress.iteration,
            lrs,
            losses,
            window.seconds_per_iter(),
            window.data_time / max(1, window.count),
            self.settings.total_iter - self.progress.iteration,
        )
        self.logger.info(line)
        self.trackers.scalars({f"losses/{k}": v for k, v in losses.items()}, self.progress.iteration)
        window.reset()


@dataclass
class Experiment:
    """What :func:`prepare_experiment` did: whether it created ``root``, and where an earlier run was moved."""

    root: Path
    created: bool = False
    archived: Path | None = None
    archive_note: str = ""

    def undo(self) -> None:
        """Remove a folder this run created and put the archived one back (a run that never started)."""
        if self.created and self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)
            if self.archived is not None and not self.root.exists():
                self.archived.rename(self.root)


def _newest_state(states_dir: str | Path) -> int | None:
    """Iteration of the newest ``<iter>.state`` file in ``states_dir`` (names only; nothing is loaded)."""
    folder = Path(states_dir)
    found = [int(p.stem) for p in folder.glob("*.state") if p.stem.isdigit()] if folder.is_dir() else []
    return max(found, default=None)


def prepare_experiment(opt: Mapping[str, Any], option_file: str | None, fresh: bool, dist: DistInfo) -> Experiment:
    """Create ``experiments/<name>/{models,training_states}`` (rank 0). A fresh run moves an existing non-empty
    folder aside to ``<name>_archived_<time>`` (BasicSR), so earlier results are never overwritten."""
    root = Path(opt["path"]["experiments_root"])
    done = Experiment(root)
    if dist.is_main:
        done.created = not root.exists()
        if fresh and root.is_dir() and any(root.iterdir()):
            newest = _newest_state(opt["path"]["training_states"])
            archived = root.with_name(f"{root.name}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
            root.rename(archived)
            done.created, done.archived = True, archived
            state = (
                f"it holds a resumable state at iteration {newest}; to continue it instead, rerun with --auto_resume"
                if newest is not None
                else "it holds no resumable training state"
            )
            done.archive_note = f"{root} already existed: moved to {archived} ({state})"
        for key in ("models", "training_states", "log"):
            Path(opt["path"][key]).mkdir(parents=True, exist_ok=True)
        if option_file:
            shutil.copyfile(option_file, root / Path(option_file).name)
    dist_utils.barrier(dist)
    return done


def find_resume(opt: Mapping[str, Any], auto_resume: bool, notes: list[str] | None = None) -> ResumePoint | None:
    """``--auto_resume``: newest complete state in ``path.training_states``; else ``path.resume_state`` if set.
    Reasons for skipping damaged states are appended to ``notes``."""
    paths = opt["path"]
    if auto_resume:
        return find_resume_point(paths["training_states"], paths["models"], None if notes is None else notes.append)
    if paths.get("resume_state"):
        return load_resume_point(paths["resume_state"])
    return None


_NOT_LOOKED = object()


def train(
    opt: dict[str, Any],
    dist: DistInfo,
    *,
    auto_resume: bool = False,
    option_file: str | None = None,
    resume: Any = _NOT_LOOKED,
    notes: Sequence[str] = (),
) -> Trainer:
    """Run a whole training from validated options; returns the finished :class:`Trainer`.

    ``resume``/``notes``: the state that :func:`find_resume` found in a pre-flight (``None``: start fresh) and its
    notes; by default it is looked up here.
    """
    notes = list(notes)
    if resume is _NOT_LOOKED:
        resume = find_resume(opt, auto_resume, notes)
    experiment = prepare_experiment(opt, option_file, fresh=resume is None and not auto_resume, dist=dist)
    trainer: Trainer | None = None
    try:
        log_file = Path(opt["path"]["log"]) / f"train_{opt.get('name') or 'run'}.log"
        logger = setup_logger(log_file, dist.is_main)
        if experiment.archive_note:
            logger.warning(experiment.archive_note)
        network = (opt.get("network_g") or {}).get("type")
        logger.info(
            f"{opt.get('name')}: model_type {opt.get('model_type') or 'SRModel'}, network_g {network}; "
            f"torch {torch.__version__}, {dist.world_size} process(es); log {log_file}"
        )
        for note in notes:
            logger.warning(note)
        for key in opt.get("skipped_datasets") or []:
            logger.info(f"datasets.{key}: null, skipped")
        log_to_file(logger, "options:\n" + yaml.safe_dump(opt, sort_keys=False))
        trainer = Trainer(opt, dist, logger, resume)
        trainer.run()
    except BaseException as err:
        if trainer is None or trainer.progress.iteration == 0:  # stopped before its first iteration
            _undo_experiment(experiment)
            raise
        if not isinstance(err, KeyboardInterrupt):
            raise
        newest = _newest_state(opt["path"]["training_states"])
        saved = f"last saved state: iteration {newest}" if newest is not None else "no state saved yet"
        raise TrainingInterrupted(
            f"interrupted at iteration {trainer.progress.iteration} ({saved}); "
            "rerun the same command with --auto_resume to continue"
        ) from None
    return trainer


def _undo_experiment(experiment: Experiment) -> None:
    """Options, data or weights were unusable: leave no run folder behind (and put an archived one back)."""
    if not experiment.created:
        return
    close_logger()
    experiment.undo()
    if experiment.archived is not None:
        print(f"{experiment.root}: left as it was (this run stopped before its first iteration)", file=sys.stderr)


def preflight(opt: dict[str, Any], auto_resume: bool, dist: DistInfo) -> tuple[list[str], Any, list[str]]:
    """Every problem that would stop the run before its first iteration (see :mod:`restore.models.preflight`),
    plus the resume state: ``(problems, resume point or None, notes on skipped states)``."""
    from restore.models.preflight import train_problems

    problems = train_problems(opt, auto_resume=auto_resume, world_size=dist.world_size)
    notes: list[str] = []
    resume = None
    try:
        resume = find_resume(opt, auto_resume, notes)
    except USER_ERRORS as err:
        label = "--auto_resume" if auto_resume else "path.resume_state"
        problems.append(f"{label}: {error_line(err)}")
    return problems, resume, notes
