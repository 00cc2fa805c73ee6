"""A resumable, distributed, optionally enlarged training sampler that also seeds each sample's augmentation.

Each epoch is a fixed sequence of ``total_size = ceil(len(dataset) * enlarge_ratio / world_size) * world_size``
positions: a permutation drawn from ``(seed, epoch)`` (or ``0, 1, ...`` without shuffling) taken modulo the
dataset length. Rank ``r`` of ``world_size`` gets positions ``r, r + world_size, ...``. Every yielded item is
``(dataset_index, sample_seed)``, where ``sample_seed`` depends only on ``(seed, epoch, position)``: datasets
draw crops and flips from it, so a sample looks the same whichever worker loads it and whether or not the run
was interrupted. ``set_epoch(epoch, start=k)`` skips the first ``k`` items of this rank (resume mid-epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["TrainSampler", "sample_seed"]


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, position)`` (NumPy ``SeedSequence`` hashing)."""
    words = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, position]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class TrainSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs for one rank; see the module docstring.

    Args:
        dataset: anything with ``len``.
        world_size: number of training processes. Default: 1.
        rank: this process's rank. Default: 0.
        enlarge_ratio: repeat the dataset this many times per epoch (``dataset_enlarge_ratio``). Default: 1.
        shuffle: draw a new permutation every epoch (``use_shuffle``). Default: True.
        seed: base seed (``manual_seed``), shared by all ranks. Default: 0.
    """

    def __init__(
        self,
        dataset: Sized,
        world_size: int = 1,
        rank: int = 0,
        enlarge_ratio: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if len(dataset) == 0:
            raise ValueError("training dataset is empty")
        self.dataset_len = len(dataset)
        self.world_size, self.rank = int(world_size), int(rank)
        self.num_samples = math.ceil(self.dataset_len * max(1, int(enlarge_ratio)) / self.world_size)
        self.total_size = self.num_samples * self.world_size
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and skip the first ``start`` items of this rank's share."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"sampler: start {start} outside 0..{self.num_samples}")
        self.epoch, self.start = int(epoch), int(start)

    def positions(self) -> list[int]:
        """This rank's epoch positions (before skipping), i.e. indices into the epoch's permutation."""
        return list(range(self.rank, self.total_size, self.world_size))

    def order(self) -> list[int]:
        """The epoch's full sequence of positions -> permutation values (length ``total_size``)."""
        if not self.shuffle:
            return list(range(self.total_size))
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.total_size, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        for position in self.positions()[self.start :]:
            yield order[position] % self.dataset_len, sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return self.num_samples - self.start
