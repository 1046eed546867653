"""The LightningDataModule every model trains from, with a sampler that makes resume exact."""

from __future__ import annotations

import math
from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from genlab.config import DataConfig
from genlab.data.registry import build_dataset
from genlab.train.device_data import collate_batch, on_device


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with a generator seeded by (seed, epoch) and shards across ranks like
    DistributedSampler, so the order of any epoch is a pure function of its number: a resumed
    run sees the same batches as an uninterrupted one. `skip_batches` drops the batches a
    checkpoint saved mid-epoch had already consumed, once."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch = 0
        self.skip_batches = 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=gen)
        else:
            order = torch.arange(self.size)
        padded = torch.cat([order, order[: self.per_rank * self.world_size - self.size]])
        mine = padded[self.rank :: self.world_size].tolist()
        skip, self.skip_batches = self.skip_batches * self.batch_size, 0
        return iter(mine[skip:])


def _batches_per_epoch(samples: int, batch_size: int, limit: int | float) -> int:
    """Lightning's count of training batches per epoch (see `limit_train_batches`)."""
    full = math.ceil(samples / batch_size)
    if isinstance(limit, int):
        return max(1, min(full, limit))
    return max(1, int(full * limit))


class GenlabDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._device_sets: dict[int, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = build_dataset(self.cfg, "train", self.seed)
            self.val_set = build_dataset(self.cfg, "val", self.seed)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochShuffleSampler(len(dataset), self.cfg.batch_size, self.seed, rank, world, shuffle)
        if shuffle and trainer is not None:
            # Resuming mid-epoch: skip the batches of this epoch the checkpointed run already used.
            # `processed` counts batches whose optimiser step ran, even when a Ctrl-C in a batch-end hook
            # came before Lightning marked the batch completed.
            done = trainer.fit_loop.epoch_loop.batch_progress.total.processed
            sampler.skip_batches = done % _batches_per_epoch(len(sampler), self.cfg.batch_size,
                                                             trainer.limit_train_batches)
        workers = self.cfg.num_workers
        if self.cfg.on_device:  # the same sampler and batches; gathered and decoded on the device
            return DataLoader(self._on_device(dataset), batch_size=self.cfg.batch_size, sampler=sampler,
                              num_workers=0, collate_fn=collate_batch, drop_last=False,
                              generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(dataset, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                          drop_last=False, generator=torch.Generator().manual_seed(self.seed))
        # its own generator: creating a loader iterator would otherwise draw from the global RNG, and a
        # resumed run creates one more iterator than an uninterrupted run

    def _on_device(self, dataset: Dataset) -> Dataset:
        """`dataset` kept on the trainer's device (built once per dataset: data.on_device)."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        key = id(dataset)
        if key not in self._device_sets:
            self._device_sets[key] = on_device(dataset, device)
        return self._device_sets[key]

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
