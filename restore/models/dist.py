"""Process-group setup for ``torchrun`` (``--launcher pytorch``) and the few collectives training needs.

``torchrun --nproc_per_node=N restore/train.py -opt X.yml --launcher pytorch`` starts N processes with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the environment (there is no ``--local_rank`` argument). The
backend is NCCL on CUDA and Gloo on CPU; multi-node runs use torchrun's rendezvous options unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

LAUNCHERS = ("none", "pytorch")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job; ``world_size == 1`` and ``enabled == False`` for single-process runs."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def wrap_ddp(net: nn.Module, device: torch.device, dist: DistInfo) -> DistributedDataParallel | None:
    """``net`` in DistributedDataParallel (on ``device.index`` for CUDA) when ``dist.enabled``, else None."""
    if not dist.enabled:
        return None
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def init_distributed(launcher: str, backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables (``launcher='pytorch'``).

    Args:
        launcher: ``none`` (single process) or ``pytorch`` (torchrun).
        backend: process-group backend; default ``nccl`` when CUDA is available, else ``gloo``.

    Raises:
        ValueError: unknown launcher, or ``pytorch`` without torchrun's environment.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher: expected one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if launcher == "none":
        return DistInfo()
    missing = [k for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(
            f"--launcher pytorch: environment variables {', '.join(missing)} are not set; start the job with "
            "`torchrun --nproc_per_node=N restore/train.py -opt X.yml --launcher pytorch`"
        )
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, enabled=True)


def shutdown(info: DistInfo) -> None:
    """Leave the process group (if this process joined one)."""
    if info.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()


def broadcast_object(value: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every rank (picklable objects)."""
    if not info.enabled:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(value: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not info.enabled:
        return [value]
    out: list[Any] = [None] * info.world_size
    torch_dist.all_gather_object(out, value)
    return out


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average scalar logs over all ranks (every rank must call this with the same keys)."""
    if not info.enabled or not values:
        return dict(values)
    packed = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch_dist.all_reduce(packed)
    return {k: float(v) / info.world_size for k, v in zip(values, packed.tolist())}
