"""Dataset names -> builders. Each builder takes the data config, a split and a seed and returns a
torch Dataset whose items are `(image, target)` with image a float tensor in [0, 1], CxHxW."""

from __future__ import annotations

from typing import Callable

from torch.utils.data import Dataset

from genlab.config import DataConfig
from genlab.errors import GenlabError

Builder = Callable[[DataConfig, str, int], Dataset]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return wrap


def build_dataset(cfg: DataConfig, split: str, seed: int = 0) -> Dataset:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if cfg.name not in _BUILDERS:
        raise GenlabError(f"data.name={cfg.name!r}: no loader for this dataset yet "
                          f"(available: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[cfg.name](cfg, split, seed)


@register("dsprites")
def _dsprites(cfg: DataConfig, split: str, seed: int) -> Dataset:
    from genlab.data.dsprites import DSprites

    return DSprites(split=split, source=cfg.source, root=cfg.root, val_fraction=cfg.val_fraction,
                    seed=seed, subset=cfg.subset)


def _images(cfg: DataConfig, split: str, seed: int) -> Dataset:
    from genlab.data.images import from_config

    return from_config(cfg, split, seed)


for _name in ("celeba", "tinyimagenet", "bitmoji", "folder"):  # one loader, four official layouts
    register(_name)(_images)
