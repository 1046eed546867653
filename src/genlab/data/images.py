"""Image datasets (CelebA, Tiny-ImageNet, Bitmoji, any folder) as torch Datasets of
`(image in [0, 1] CxHxW, target)`.

    ds = image_dataset("celeba", "../shared/data/celeba", "train", image_size=128, crop=148/178, cache=True)
    x, attrs = ds[0]          # attrs: 40 {0,1} attributes (ds.labels["attr_names"]); -1 = unknown

Targets: CelebA -> LongTensor of its 40 attributes; Tiny-ImageNet -> class index into
`ds.labels["classes"]` (sorted wnids, as torchvision's ImageFolder numbers them); Bitmoji ->
is_male from train.csv; a folder -> its top-level subfolder's index. -1 means no label.

Splits are deterministic: the official partition when the dataset ships one (CelebA's
list_eval_partition.txt, Tiny-ImageNet's val/), otherwise a hash of each file's relative path
decides, so the split does not depend on the seed, the file order or on files added later.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from genlab.data.cache import ImageCache, decode_all, open_or_build
from genlab.data.layouts import ImageIndex, index_dataset, relative
from genlab.data.transforms import ImageTransform, to_float
from genlab.errors import GenlabError

log = logging.getLogger("genlab.data")
SPLITS = ("train", "val", "test", "all", "holdout")
HOLDOUT_SEED = 20190412  # the held-out set depends only on the file list and its size, never the run's seed


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def holdout_positions(n: int, holdout: int) -> np.ndarray:
    """The fixed, seeded positions (sorted) of `holdout` of `n` images kept out of every other split."""
    if holdout >= n:
        raise GenlabError(f"data.holdout={holdout} leaves no images to train on ({n} in the dataset); "
                          f"lower data.holdout (e.g. data.holdout={n // 5})")
    return np.sort(np.random.default_rng(HOLDOUT_SEED).choice(n, size=holdout, replace=False))


def split_positions(index: ImageIndex, split: str, val_fraction: float = 0.1, subset: Optional[int] = None,
                    seed: int = 0, holdout: int = 0) -> np.ndarray:
    """Positions in `index.files` of the images of `split` (sorted). With `holdout` > 0, a fixed set of
    that many images (`holdout_positions`, split "holdout") is removed before the subset and the split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = len(index.files)
    pos = np.arange(n)
    if holdout:
        held = holdout_positions(n, holdout)
        if split == "holdout":
            return held
        pos = np.setdiff1d(pos, held)
    elif split == "holdout":
        raise GenlabError(f"{index.name}: no held-out images: set data.holdout=N to keep N images out of training")
    if subset is not None and subset < len(pos):
        pos = pos[np.sort(np.random.default_rng(seed).choice(len(pos), size=subset, replace=False))]
    if split == "all":
        return pos
    if index.partition is not None:
        parts = np.asarray(index.partition)[pos]
        if (parts == "train").any() and (parts == "val").any():
            return pos[parts == split]
        log.warning("%s: the official partition leaves no %s images among these files; splitting by hash instead",
                    index.name, "train" if not (parts == "train").any() else "val")
    if split == "test":
        return pos[:0]
    h = np.array([_unit_hash(relative(index.files[i], index.root)) for i in pos])
    is_val = h < val_fraction
    if len(pos) >= 2:  # never leave a split empty: Lightning would have nothing to validate on
        if not is_val.any():
            is_val[np.argmin(h)] = True
        if is_val.all():
            is_val[np.argmax(h)] = False
    return pos[is_val] if split == "val" else pos[~is_val]


class ImageDataset(Dataset):
    """Images of one split of an indexed dataset, decoded on the fly or read from the cache."""

    def __init__(self, index: ImageIndex, positions: Sequence[int], transform: ImageTransform, split: str = "train",
                 cache: bool = False, skip_corrupt: bool = False, num_workers: int = 0, progress: bool = True,
                 cache_root: Optional[Path] = None, source_tag: str = "") -> None:
        self.index, self.transform, self.split = index, transform, split
        self.name, self.labels = index.name, index.labels
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            raise GenlabError(f"{index.name}: the {split} split of {index.root} is empty "
                              f"(too few images for data.val_fraction, or the partition file has none)")
        self.files: list[str] = [index.files[i] for i in positions]
        self.targets: np.ndarray = index.targets[positions]
        self.skipped: list[str] = []
        self.cache: Optional[ImageCache] = None
        if cache:
            source = f"{index.name}:{os.path.abspath(index.root)}:{split}:{source_tag}"
            self.cache = open_or_build(source, self.files, transform, skip_corrupt, num_workers, progress,
                                       root=cache_root)
            self._keep(self.cache.rows, self.cache.skipped)
        elif skip_corrupt:
            kept, skipped = [], []
            for i, img, error in decode_all(self.files, transform, True, num_workers, progress,
                                            f"checking {len(self.files)} images"):
                if img is None:
                    skipped.append(error)
                else:
                    kept.append(i)
            self._keep(np.asarray(sorted(kept), dtype=np.int64), skipped)

    def _keep(self, rows: np.ndarray, skipped: list[str]) -> None:
        self.skipped = list(skipped)
        if not skipped:
            return
        self.files = [self.files[r] for r in rows]
        self.targets = self.targets[rows]
        total = len(self.files) + len(skipped)
        log.warning("%s %s: skipped %d unreadable image(s) of %d; first: %s", self.name, self.split,
                    len(skipped), total, skipped[0])
        if not self.files:
            raise GenlabError(f"{self.name}: none of the {total} images could be read (first: {skipped[0]})")

    def __len__(self) -> int:
        return len(self.files)

    def _target(self, i: int) -> Any:
        t = self.targets[i]
        return torch.from_numpy(np.array(t)) if self.targets.ndim > 1 else int(t)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        img = self.cache[i] if self.cache is not None else self.transform.load(self.files[i])
        return to_float(img), self._target(i)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, Any]]:
        """Batched fetch for the DataLoader: one read of the memory map per batch."""
        if self.cache is None:
            return [self[i] for i in indices]
        images = to_float(self.cache.batch(indices))
        return [(images[k], self._target(i)) for k, i in enumerate(indices)]

    def uint8(self, i: int) -> torch.Tensor:
        """The i-th image as stored (uint8 CxHxW)."""
        return self.cache[i] if self.cache is not None else self.transform.load(self.files[i])


def image_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", *, image_size: int = 64,
                  crop: float = 1.0, channels: int = 3, cache: bool = False, skip_corrupt: bool = False,
                  subset: Optional[int] = None, val_fraction: float = 0.1, seed: int = 0, num_workers: int = 0,
                  progress: bool = True, cache_root: Optional[Path] = None, holdout: int = 0) -> ImageDataset:
    """One split of an image dataset in its official layout (see the module docstring)."""
    index = index_dataset(name, root)
    positions = split_positions(index, split, val_fraction, subset, seed, holdout)
    transform = ImageTransform(size=image_size, crop=crop, channels=channels)
    tag = f"subset={subset},seed={seed},val={val_fraction}" if subset else f"val={val_fraction}"
    tag += f",holdout={holdout}" if holdout else ""
    return ImageDataset(index, positions, transform, split, cache=cache, skip_corrupt=skip_corrupt,
                        num_workers=num_workers, progress=progress, cache_root=cache_root, source_tag=tag)


def from_config(cfg, split: str, seed: int = 0) -> ImageDataset:
    """The registry's builder: `cfg` is a `genlab.config.DataConfig`."""
    return image_dataset(cfg.name, cfg.root, split, image_size=cfg.image_size, crop=cfg.crop, channels=cfg.channels,
                         cache=cfg.cache, skip_corrupt=cfg.skip_corrupt, subset=cfg.subset,
                         val_fraction=cfg.val_fraction, seed=seed, num_workers=cfg.num_workers,
                         holdout=cfg.holdout)
