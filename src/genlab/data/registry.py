"""Dataset names -> builders. Each builder takes the data config, a split and a seed and returns a
torch Dataset whose items are `(image, target)` with image a float tensor in [0, 1], CxHxW.

`BUILDERS` is public so tests and benchmarks can put a small dataset in place of a real one:
`monkeypatch.setitem(BUILDERS, "bitmoji", fn)` in a test, or `with replaced("bitmoji", fn): ...`."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from torch.utils.data import Dataset

from genlab.config import DataConfig
from genlab.errors import GenlabError

Builder = Callable[[DataConfig, str, int], Dataset]
BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return wrap


@contextlib.contextmanager
def replaced(name: str, fn: Builder) -> Iterator[None]:
    """`data.name=name` builds with `fn` inside the block; the previous builder comes back after it."""
    previous = BUILDERS.get(name)
    BUILDERS[name] = fn
    try:
        yield
    finally:
        if previous is None:
            BUILDERS.pop(name, None)
        else:
            BUILDERS[name] = previous


def build_dataset(cfg: DataConfig, split: str, seed: int = 0) -> Dataset:
    if split not in ("train", "val", "holdout"):
        raise ValueError(f"split must be 'train', 'val' or 'holdout', got {split!r}")
    if cfg.name not in BUILDERS:
        raise GenlabError(f"data.name={cfg.name!r}: no loader for this dataset yet "
                          f"(available: {', '.join(sorted(BUILDERS))})")
    if cfg.holdout and cfg.name == "dsprites":
        raise GenlabError("data.holdout is for image datasets (celeba, tinyimagenet, bitmoji, folder); "
                          "dSprites has no held-out split: set data.holdout=0")
    return BUILDERS[cfg.name](cfg, split, seed)


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
