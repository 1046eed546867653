"""The GPU path's training-side pieces: a dataset kept on the training device, the model's weights in
channels_last, and torch.compile of the model's sub-networks.

`data.on_device=true`: the split's raw storage (dSprites' bit-packed rows, an image dataset's uint8
cache, a TensorDataset's tensors) is copied to the device once; each batch is gathered and decoded
there (bits unpacked, uint8 -> float by a lookup table), so a GPU is not fed by host loader workers.
`DeviceDataset` plugs into the same DataLoader and `EpochShuffleSampler` as the host path (its
`__getitems__` returns the collated batch), so the batches, their order, resume skipping and DDP
sharding are those of the loader path, value for value.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset, TensorDataset

from genlab.data.cache import decode_on_device, float_table
from genlab.data.dsprites import DSprites, unpack_to_float
from genlab.data.images import ImageDataset
from genlab.errors import GenlabError

__all__ = ["DeviceDataset", "apply_channels_last", "collate_batch", "compile_net", "on_device"]


class DeviceDataset(Dataset):
    """A dataset whose storage lives on `device`; `dataset[indices]` (via `__getitems__`) is a whole
    batch `[images, targets]` built there."""

    def __init__(self, storage: torch.Tensor, targets: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor],
                 channels_last: bool = False) -> None:
        self.storage, self.targets, self.decode = storage, targets, decode
        self.channels_last = channels_last
        self.device = storage.device

    def __len__(self) -> int:
        return len(self.storage)

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long).to(self.device, non_blocking=True)
        images = self.decode(self.storage.index_select(0, idx))
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return [images, self.targets.index_select(0, idx)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = self.__getitems__([i])
        return images[0], targets[0]


def collate_batch(batch: Any) -> Any:
    """The DataLoader's collate for a DeviceDataset: `__getitems__` already built the batch."""
    return batch


def _filled(chunks, n: int, device: torch.device) -> torch.Tensor:
    """Stack uint8 chunks into one tensor on `device`, chunk by chunk (no second full copy on the host)."""
    out: torch.Tensor | None = None
    at = 0
    for chunk in chunks:
        if out is None:
            out = torch.empty((n, *chunk.shape[1:]), dtype=chunk.dtype, device=device)
        out[at:at + len(chunk)].copy_(chunk)
        at += len(chunk)
    if out is None or at != n:
        raise GenlabError(f"data.on_device: expected {n} images, got {at}")
    return out


def _image_targets(targets) -> torch.Tensor:
    t = torch.as_tensor(targets)
    # the loader collates 1-d targets as Python ints (int64); 2-d ones (CelebA attributes) keep their dtype
    return t.to(torch.int64) if t.dim() == 1 else t


def on_device(dataset: Dataset, device: torch.device | str, channels_last: bool = False) -> DeviceDataset:
    """`dataset` with its storage on `device`, yielding the batches the host loader would."""
    device = torch.device(device)
    if isinstance(dataset, DeviceDataset):
        return dataset
    if isinstance(dataset, DSprites):
        storage = torch.from_numpy(dataset.packed_images()).to(device)
        targets = torch.from_numpy(dataset.classes.astype("int64", copy=False)).to(device)
        return DeviceDataset(storage, targets, unpack_to_float, channels_last)
    if isinstance(dataset, ImageDataset):
        if dataset.cache is None:
            raise GenlabError(f"data.on_device=true needs the uint8 image cache for {dataset.name}: "
                              "add data.cache=true")
        storage = _filled(dataset.cache.kept_images(), len(dataset), device)
        table = float_table().to(device)
        return DeviceDataset(storage, _image_targets(dataset.targets).to(device),
                             lambda x: decode_on_device(x, table), channels_last)
    if isinstance(dataset, TensorDataset):
        images, *rest = dataset.tensors
        targets = rest[0] if rest else torch.zeros(len(images), dtype=torch.long)
        return DeviceDataset(images.to(device), targets.to(device), lambda x: x, channels_last)
    raise GenlabError(f"data.on_device=true: a {type(dataset).__name__} cannot live on the device (supported: "
                      "dSprites, image datasets with data.cache=true); set data.on_device=false")


# --- channels_last and torch.compile -----------------------------------------------------------------
def apply_channels_last(net: torch.nn.Module) -> torch.nn.Module:
    """The 4-d weights of `net` in channels_last (NHWC) layout, in place; moving the module to a device
    keeps the layout, and convolutions then produce channels_last activations."""
    return net.to(memory_format=torch.channels_last)


def compiler_problem(device_type: str) -> str | None:
    """Why torch.compile cannot work here, or None: inductor needs a C++ compiler on CPU, triton on CUDA."""
    if device_type == "cuda":
        return None if importlib.util.find_spec("triton") is not None else (
            "trainer.compile=true on CUDA needs triton (pip install triton); or set trainer.compile=false")
    cxx = os.environ.get("CXX")
    if (cxx and shutil.which(cxx)) or any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return None
    return ("trainer.compile=true on CPU needs a C++ compiler (g++ or clang++ on PATH, or $CXX); install one "
            "(e.g. apt-get install g++) or set trainer.compile=false")


def _target_device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def compile_net(net: torch.nn.Module, accelerator: str = "auto") -> list[str]:
    """torch.compile (in place, `Module.compile`) each trainable sub-network of `net`, so parameter
    names, checkpoints and the model's own methods (`elbo`, `generator`, ...) are unchanged. A vector
    quantiser (data-dependent codebook updates) stays eager. Returns the names compiled."""
    problem = compiler_problem(_target_device(accelerator))
    if problem:
        raise GenlabError(problem)
    from genlab.models.vqvae import VectorQuantizer

    names = []
    for name, child in net.named_children():
        if isinstance(child, VectorQuantizer) or not any(p.requires_grad for p in child.parameters()):
            continue
        child.compile()
        names.append(name)
    if not names:  # a model without sub-networks: compile its forward
        net.compile()
        names.append("")
    return names
