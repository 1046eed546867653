"""The code-map dataset: one pass of a trained VQ-VAE over the data writes every image's code
indices (uint16) with its source image id and split into `<run>/codes/codes.npz`.

    indices  (N, H, W) uint16   code indices
    ids      (N,) str           the image's file (relative to the dataset root) or "<split>:<index>"
    split    (N,) str           "train" or "val" (the run's own split of the data)
    codebook (K, D) float32     the codebook the indices refer to
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genlab.data.registry import build_dataset
from genlab.defaults import CODES
from genlab.errors import GenlabError
from genlab.io import atomic_path
from genlab.runs import Run
from genlab.safe_load import load_npz

CODES_FILE = Path("codes") / "codes.npz"
CODE_MAP_KEYS = ("indices", "ids", "split", "codebook")


@dataclass
class CodeMaps:
    indices: np.ndarray
    ids: np.ndarray
    split: np.ndarray
    codebook: np.ndarray

    @property
    def num_codes(self) -> int:
        return int(self.codebook.shape[0])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.indices.shape[1]), int(self.indices.shape[2])

    def of_split(self, split: str) -> torch.Tensor:
        """The maps of one split as an int64 tensor (N, H, W)."""
        return torch.from_numpy(self.indices[self.split == split].astype(np.int64))


def codes_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CODES_FILE


def image_ids(dataset: Dataset, split: str) -> list[str]:
    files = getattr(dataset, "files", None)
    if files is not None and len(files) == len(dataset):
        return [str(f) for f in files]
    return [f"{split}:{i}" for i in range(len(dataset))]


@torch.no_grad()
def encode_dataset(net, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu",
                   progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """(N, H, W) uint16 code maps of a dataset of (image, target), in dataset order."""
    out = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        out.append(net.codes(x.to(device)).cpu().numpy().astype(np.uint16))
        if progress:
            progress(len(x))
    return np.concatenate(out)


def write_code_maps(run_dir: str | Path, which: str = CODES["which"], batch_size: int = CODES["batch_size"],
                    device: str = "cpu", console=None) -> Path:
    """Encode the run's train and val splits with its VQ-VAE; returns the path of codes.npz."""
    from rich.progress import Progress

    run = Run.open(run_dir)
    cfg = run.config()
    if cfg.model.name != "vqvae":
        raise GenlabError(f"{run.path}: code maps need a VQ-VAE run, this one trains {cfg.model.name!r}")
    net = run.load_model(which, device)
    if cfg.model.num_codes > 65536:
        raise GenlabError(f"{run.path}: {cfg.model.num_codes} codes do not fit uint16")
    parts = {split: build_dataset(cfg.data, split, cfg.trainer.seed) for split in ("train", "val")}
    indices, ids, splits = [], [], []
    with Progress(console=console, transient=True, disable=console is None) as bar:
        for split, ds in parts.items():
            task = bar.add_task(f"encoding {split}", total=len(ds))
            indices.append(encode_dataset(net, ds, batch_size, device, lambda n, task=task: bar.advance(task, n)))
            ids += image_ids(ds, split)
            splits += [split] * len(ds)
    path = codes_path(run.path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare temp name
            np.savez(f, indices=np.concatenate(indices), ids=np.asarray(ids), split=np.asarray(splits),
                     codebook=net.codebook.detach().cpu().numpy().astype(np.float32))
    return path


def load_code_maps(run_dir: str | Path) -> CodeMaps:
    path = codes_path(run_dir)
    if not path.is_file():
        raise GenlabError(f"{path} not found: write the code-map dataset first with `genlab codes {run_dir}`")
    fix = f"rewrite it with `genlab codes {run_dir}`"
    z = load_npz(path, "code-map file", keys=CODE_MAP_KEYS, fix=fix)
    if set(CODE_MAP_KEYS) - set(z):
        raise GenlabError(f"{path}: not a code-map file (missing {sorted(set(CODE_MAP_KEYS) - set(z))}); {fix}")
    return CodeMaps(z["indices"], z["ids"], z["split"], z["codebook"])
