"""Datasets and data loaders from ``datasets.<phase>`` options, plus CPU/CUDA prefetching.

Training loaders draw ``batch_size_per_gpu`` items per process from a :class:`TrainSampler` (dropping the last
incomplete batch); validation loaders read one whole image at a time in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

import restore.data.datasets  # noqa: F401 - registers the datasets
from restore.data.real_esrgan import RealESRGANDataset  # noqa: F401 - registers it
from restore.data.sampler import TrainSampler
from restore.utils.registry import DATASET_REGISTRY
from restore.utils.threads import worker_threads

__all__ = ["CPUPrefetcher", "CUDAPrefetcher", "build_dataset", "build_train_loader", "build_val_loader", "prefetch"]


def build_dataset(opt: Mapping[str, Any]) -> Dataset:
    """Instantiate ``DATASET_REGISTRY[opt['type']](opt)``; ``opt`` is copied, not modified."""
    if "type" not in opt:
        raise KeyError(
            f"datasets.{opt.get('name', '?')}: missing 'type' (one of: {', '.join(DATASET_REGISTRY.keys())})"
        )
    return DATASET_REGISTRY.get(opt["type"])(dict(opt))


def build_train_loader(
    dataset: Dataset, opt: Mapping[str, Any], *, world_size: int = 1, rank: int = 0, seed: int = 0
) -> tuple[DataLoader, TrainSampler]:
    """A training loader over ``dataset`` and its resumable sampler.

    Reads ``batch_size_per_gpu``, ``num_worker_per_gpu``, ``dataset_enlarge_ratio``, ``use_shuffle`` and
    ``pin_memory`` from ``opt``. The loader has its own random generator, so creating an iterator never
    consumes the global torch random state (needed for bit-identical resumption).
    """
    name = opt.get("name", "train")
    batch_size = opt.get("batch_size_per_gpu")
    if not batch_size or batch_size < 1:
        raise ValueError(f"datasets.{name}.batch_size_per_gpu: expected a positive int, got {batch_size!r}")
    sampler = TrainSampler(
        dataset,
        world_size=world_size,
        rank=rank,
        enlarge_ratio=opt.get("dataset_enlarge_ratio") or 1,
        shuffle=opt.get("use_shuffle", True) is not False,
        seed=seed,
    )
    if sampler.num_samples < batch_size:
        raise ValueError(
            f"datasets.{name}: {sampler.num_samples} sample(s) per process per epoch, fewer than "
            f"batch_size_per_gpu={batch_size}; raise dataset_enlarge_ratio or lower the batch size"
        )
    workers = int(opt.get("num_worker_per_gpu") or 0)
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=bool(opt.get("pin_memory", False)),
        persistent_workers=False,
        generator=generator,
        worker_init_fn=worker_threads if workers else None,
    )
    return loader, sampler


def build_val_loader(dataset: Dataset, opt: Mapping[str, Any]) -> DataLoader:
    """Whole images, one per batch, in order; ``num_worker_per_gpu`` workers (default 0)."""
    workers = int(opt.get("num_worker_per_gpu") or 0)
    return DataLoader(
        dataset, batch_size=1, shuffle=False, num_workers=workers, worker_init_fn=worker_threads if workers else None
    )


class CPUPrefetcher:
    """Iterates ``source`` in a background thread, keeping up to ``depth`` batches ready (``prefetch_mode: cpu``)."""

    _END = object()

    def __init__(self, source: Iterator[Any], depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True)
        self._thread.start()

    def _fill(self, source: Iterator[Any]) -> None:
        try:
            for item in source:
                self._queue.put(item)
        except BaseException as err:  # re-raised in the consumer thread
            self._queue.put(err)
        self._queue.put(self._END)

    def __iter__(self) -> CPUPrefetcher:
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item


class CUDAPrefetcher:
    """Copies the next batch's tensors to ``device`` on a side stream while the current one trains
    (``prefetch_mode: cuda``; use ``pin_memory: true`` for asynchronous copies)."""

    def __init__(self, source: Iterator[Any], device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"prefetch_mode: 'cuda' needs a CUDA device, training runs on {device}")
        self._source, self._device = source, device
        self._stream = torch.cuda.Stream(device=device)
        self._next = self._load()

    def _load(self) -> Any:
        try:
            batch = next(self._source)
        except StopIteration:
            return None
        with torch.cuda.stream(self._stream):
            return {
                k: v.to(self._device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
            }

    def __iter__(self) -> CUDAPrefetcher:
        return self

    def __next__(self) -> Any:
        torch.cuda.current_stream(self._device).wait_stream(self._stream)
        batch = self._next
        if batch is None:
            raise StopIteration
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                value.record_stream(torch.cuda.current_stream(self._device))
        self._next = self._load()
        return batch


def prefetch(source: Iterator[Any], mode: str | None, device: torch.device) -> Iterator[Any]:
    """Wrap a loader iterator according to ``prefetch_mode`` (``None``/``cpu``/``cuda``)."""
    if mode is None:
        return source
    if mode == "cpu":
        return CPUPrefetcher(source)
    if mode == "cuda":
        return CUDAPrefetcher(source, device)
    raise ValueError(f"prefetch_mode: expected ~, 'cpu' or 'cuda', got {mode!r}")
