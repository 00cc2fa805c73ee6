"""Learning-rate schedules with BasicSR's names and semantics, as closed-form functions of the step count.

Conventions (as in BasicSR's training loop): iterations are counted from 1; at iteration ``t`` the scheduler has
been stepped ``t - 1`` times, so the learning rate used by iteration ``t`` is ``schedule.lr(t - 1, base_lr)``.
A linear warm-up (``train.warmup_iter = w > 0``) replaces it by ``base_lr * t / w`` while ``t < w``.

Because every value is a pure function of ``(step, base_lr)``, resuming only needs the iteration number, and a
schedule can be checked against its formula directly. (BasicSR's ``MultiStepRestartLR`` is recursive; after a
warm-up it keeps the last warm-up value ``base_lr * (w - 1) / w`` instead of ``base_lr``: not reproduced here.
Official HAT, DRCT, DLGSANet and DRSformer configs use no warm-up, where both agree exactly.)
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "SCHEDULES",
    "CosineAnnealingRestartCyclicLR",
    "CosineAnnealingRestartLR",
    "LRController",
    "MultiStepRestartLR",
    "build_schedule",
]


class MultiStepRestartLR:
    """Step decay with optional restarts (BasicSR ``MultiStepLR``/``MultiStepRestartLR``).

    ``lr(step) = base_lr * w_r * gamma ** #{milestones m : r < m <= step}`` where ``r`` is the latest restart
    ``<= step`` and ``w_r`` its weight (``r = 0``, ``w = 1`` before any restart; a milestone listed twice counts
    twice).

    Args:
        milestones: steps at which the rate is multiplied by ``gamma``.
        gamma: decay factor. Default: 0.1.
        restarts: steps at which the rate jumps back to ``base_lr * restart_weight``. Default: (0,).
        restart_weights: one weight per restart. Default: (1,).
    """

    def __init__(
        self,
        milestones: Sequence[int],
        gamma: float = 0.1,
        restarts: Sequence[int] = (0,),
        restart_weights: Sequence[float] = (1,),
    ) -> None:
        if len(restarts) != len(restart_weights):
            raise ValueError(
                f"scheduler: restarts ({len(restarts)}) and restart_weights ({len(restart_weights)}) differ in length"
            )
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.restarts = [int(r) for r in restarts]
        self.restart_weights = [float(w) for w in restart_weights]

    def lr(self, step: int, base_lr: float) -> float:
        past = [(r, w) for r, w in zip(self.restarts, self.restart_weights) if r <= step]
        restart, weight = max(past) if past else (-1, 1.0)  # -1: a milestone at step 0 still counts
        decays = sum(n for m, n in self.milestones.items() if restart < m <= step)
        return base_lr * weight * self.gamma**decays


class CosineAnnealingRestartCyclicLR:
    """Cosine annealing in consecutive cycles, each with its own floor (DRSformer/Restormer's scheduler).

    In cycle ``i`` (length ``periods[i]``, starting at ``s_i = sum(periods[:i])``; a step equal to a cycle's end
    still belongs to it):
    ``lr(step) = eta_min_i + w_i * (base_lr - eta_min_i) * (1 + cos(pi * (step - s_i) / periods[i])) / 2``.

    Args:
        periods: length of each cycle in steps.
        restart_weights: one weight ``w_i`` per cycle. Default: (1,).
        eta_mins: one floor per cycle. Default: (0,).
    """

    def __init__(
        self, periods: Sequence[int], restart_weights: Sequence[float] = (1,), eta_mins: Sequence[float] = (0,)
    ) -> None:
        self._init(periods, restart_weights, eta_mins)

    def _init(self, periods: Sequence[int], weights: Sequence[float], eta_mins: Sequence[float]) -> None:
        if not periods or any(int(p) <= 0 for p in periods):
            raise ValueError(f"scheduler: periods must be positive step counts, got {list(periods)}")
        if len(periods) != len(weights) or len(periods) != len(eta_mins):
            raise ValueError(
                f"scheduler: periods ({len(periods)}), restart_weights ({len(weights)}) and eta_mins "
                f"({len(eta_mins)}) must have the same length"
            )
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in weights]
        self.eta_mins = [float(e) for e in eta_mins]
        self.ends = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]

    @property
    def last_step(self) -> int:
        """The largest step the schedule is defined for (the sum of the periods)."""
        return self.ends[-1]

    def lr(self, step: int, base_lr: float) -> float:
        if step > self.last_step:
            raise ValueError(f"scheduler: step {step} is past the last cycle (periods sum to {self.last_step})")
        cycle = bisect.bisect_left(self.ends, step)
        start = self.ends[cycle] - self.periods[cycle]
        eta_min, weight = self.eta_mins[cycle], self.restart_weights[cycle]
        phase = (step - start) / self.periods[cycle]
        return eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * phase))


class CosineAnnealingRestartLR(CosineAnnealingRestartCyclicLR):
    """BasicSR's cosine annealing with restarts: ``CosineAnnealingRestartCyclicLR`` with one ``eta_min`` for all
    cycles.

    Args:
        periods: length of each cycle in steps.
        restart_weights: one weight per cycle. Default: (1,).
        eta_min: floor of every cycle. Default: 0.
    """

    def __init__(self, periods: Sequence[int], restart_weights: Sequence[float] = (1,), eta_min: float = 0) -> None:
        self._init(periods, restart_weights, [eta_min] * len(periods))


#: ``train.scheduler.type`` -> schedule class (BasicSR's ``MultiStepLR`` is its ``MultiStepRestartLR``).
SCHEDULES: dict[str, type] = {
    "MultiStepLR": MultiStepRestartLR,
    "MultiStepRestartLR": MultiStepRestartLR,
    "CosineAnnealingRestartLR": CosineAnnealingRestartLR,
    "CosineAnnealingRestartCyclicLR": CosineAnnealingRestartCyclicLR,
}


def build_schedule(opt: Mapping[str, Any], total_iter: int | None = None, where: str = "train.scheduler") -> Any:
    """Build a schedule from ``{'type': name, **kwargs}``; cosine schedules must cover ``total_iter - 1`` steps."""
    name = opt.get("type")
    if name not in SCHEDULES:
        raise KeyError(f"{where}.type: unknown scheduler {name!r}; supported: {', '.join(SCHEDULES)}")
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    try:
        schedule = SCHEDULES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"{where}: {name}: {err}") from None
    last = getattr(schedule, "last_step", None)
    if last is not None and total_iter is not None and total_iter - 1 > last:
        raise ValueError(
            f"{where}.periods: sum to {last} steps but train.total_iter={total_iter} needs {total_iter - 1}"
        )
    return schedule


class LRController:
    """Sets an optimizer's learning rates for each iteration from a schedule and an optional linear warm-up.

    The base rate of each parameter group is its ``lr`` when the controller is created (BasicSR's
    ``initial_lr``); it is part of ``state_dict`` so that a resumed run keeps it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Any, warmup_iter: int = -1) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmup_iter = int(warmup_iter) if warmup_iter is not None else -1
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]

    def lrs_at(self, iteration: int) -> list[float]:
        """Learning rate of each parameter group for 1-based ``iteration``."""
        if iteration < self.warmup_iter:
            return [base * iteration / self.warmup_iter for base in self.base_lrs]
        return [self.schedule.lr(iteration - 1, base) for base in self.base_lrs]

    def apply(self, iteration: int) -> list[float]:
        """Write ``lrs_at(iteration)`` into the optimizer's parameter groups and return them."""
        lrs = self.lrs_at(iteration)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        return lrs

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "warmup_iter": self.warmup_iter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(
                f"training state: {len(state['base_lrs'])} learning-rate groups, the optimizer has {len(self.base_lrs)}"
            )
        self.base_lrs = [float(v) for v in state["base_lrs"]]
