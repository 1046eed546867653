"""A preprocessed image cache: decoded, transformed uint8 images in one memory-mapped .npy file.

The key hashes the source, the file list (path, size, mtime of every file) and the transform,
so adding, removing or editing an image, or changing the crop/size, builds a new cache; an
unchanged dataset reopens the old one and decodes no JPEGs at all. A cache is built in a
temporary folder and renamed into place only when complete, so a crash never leaves a
half-written cache that looks valid. Lives under `genlab.io.cache_dir("images")`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genlab.data.transforms import ImageTransform, to_float
from genlab.errors import GenlabError
from genlab.io import atomic_write_json, atomic_write_text, cache_dir
from genlab.progress import progress as progress_bar

CACHE_VERSION = 1
log = logging.getLogger("genlab.data")


def cache_key(source: str, files: Sequence[str], transform: ImageTransform) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "source": source, "transform": transform.describe()},
                        sort_keys=True).encode())
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            raise GenlabError(f"{path}: image file not found (was the dataset moved?)") from None
        h.update(f"\n{os.fspath(path)}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


class _Decode(Dataset):
    """Decodes files for the build, in DataLoader workers when asked; failures come back as
    messages (skip mode) instead of killing the worker."""

    def __init__(self, files: Sequence[str], transform: ImageTransform, skip: bool) -> None:
        self.files, self.transform, self.skip = files, transform, skip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return i, self.transform.load(self.files[i]), None
        except GenlabError as exc:
            if not self.skip:
                raise
            return i, None, str(exc)


def _as_list(batch):
    return batch


def decode_all(files: Sequence[str], transform: ImageTransform, skip_corrupt: bool, num_workers: int = 0,
               progress: bool = True, description: str = "decoding"):
    """Yields (index, uint8 image or None, error or None) for every file, decoding in
    `num_workers` processes. Without skip_corrupt the first unreadable file raises."""
    loader = DataLoader(_Decode(files, transform, skip_corrupt), batch_size=32, num_workers=num_workers,
                        collate_fn=_as_list, shuffle=False)
    with progress_bar(description, len(files), enabled=progress) as advance:
        try:
            for batch in loader:
                yield from batch
                advance(len(batch))
        except GenlabError as exc:
            raise GenlabError(worker_message(exc)) from None


def worker_message(exc: Exception) -> str:
    """A GenlabError re-raised by a DataLoader worker carries the worker's whole traceback;
    keep only its own one-line message."""
    text = str(exc)
    if text.startswith("Caught ") and "GenlabError: " in text:
        return text.rsplit("GenlabError: ", 1)[-1].strip()
    return text


class ImageCache:
    """Read side: `cache[i]` is the uint8 CxHxW image of the i-th *kept* file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        meta = json.loads((folder / "meta.json").read_text())
        self.key: str = meta["key"]
        self.shape: tuple[int, ...] = tuple(meta["shape"])
        self.rows = np.asarray(meta["kept"], dtype=np.int64)  # row of each kept file in images.npy
        self.skipped: list[str] = meta["skipped"]
        self._array: Optional[np.ndarray] = None  # opened lazily: each DataLoader worker maps its own

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.folder / "images.npy", mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array[self.rows[i]]))

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        return torch.from_numpy(self.array[rows])  # fancy indexing copies out of the map

    def kept_images(self, chunk: int = 4096):
        """The kept images in item order as uint8 (n, C, H, W) chunks (copies out of the map), so a caller
        can fill a device tensor without holding the whole set in host memory twice."""
        for start in range(0, len(self.rows), chunk):
            yield torch.from_numpy(self.array[self.rows[start:start + chunk]])

    def __getstate__(self):  # never pickle the mapping into workers
        state = dict(self.__dict__)
        state["_array"] = None
        return state


def float_table() -> torch.Tensor:
    """float32 (256,) with entry v = the library's float value of the uint8 v (exactly `to_float`): a
    lookup decodes uint8 images on any device bit-identically to the loader (a GPU division by a
    scalar would multiply by the reciprocal, which rounds differently for some values)."""
    return to_float(torch.arange(256, dtype=torch.uint8))


def decode_on_device(images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 images on any device -> float32 in [0, 1], bit-identical to `to_float`; `table` is
    `float_table()` moved to the images' device."""
    return table[images.long()]


def open_or_build(source: str, files: Sequence[str], transform: ImageTransform, skip_corrupt: bool = False,
                  num_workers: int = 0, progress: bool = True, root: Optional[Path] = None) -> ImageCache:
    """The cache for exactly these files and this transform, building it on first use."""
    root = Path(root) if root is not None else cache_dir("images")
    key = cache_key(source, files, transform)
    folder = root / key
    if folder.is_dir():
        try:
            cache = ImageCache(folder)
            if cache.key == key and cache.array.shape == (len(files), transform.channels, transform.size,
                                                          transform.size):
                if cache.skipped and not skip_corrupt:
                    # built by a skip_corrupt run: without it, stop at the first bad file as a fresh decode would
                    raise GenlabError(f"{cache.skipped[0]} ({len(cache.skipped)} unreadable image(s) in all)")
                return cache
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass
        log.warning("image cache %s is damaged; rebuilding it", folder)
        shutil.rmtree(folder, ignore_errors=True)
    _build(folder, key, files, transform, skip_corrupt, num_workers, progress)
    _forget_previous(root, source, key)
    return ImageCache(folder)


def _build(folder: Path, key: str, files: Sequence[str], transform: ImageTransform, skip_corrupt: bool,
           num_workers: int, progress: bool) -> None:
    _remove_dead_builds(folder)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shape = (len(files), transform.channels, transform.size, transform.size)
        array = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        kept, skipped = [], []
        for i, img, error in decode_all(files, transform, skip_corrupt, num_workers, progress,
                                        f"caching {len(files)} images"):
            if img is None:
                skipped.append(error)
            else:
                array[i] = img.numpy()
                kept.append(i)
        array.flush()
        del array
        if not kept:
            raise GenlabError(f"none of the {len(files)} images could be read (first error: {skipped[0]})")
        atomic_write_json(tmp / "meta.json", {"key": key, "shape": shape, "kept": kept, "skipped": skipped,
                                              "transform": transform.describe(), "n_files": len(files)})
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same cache first: theirs is as good as ours
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_dead_builds(folder: Path) -> None:
    """Temporary folders of builds whose process died (killed mid-build) are garbage; those of
    a live process (another DDP rank building the same cache) are left alone."""
    for tmp in folder.parent.glob(f".{folder.name}.*.tmp"):
        try:
            os.kill(int(tmp.name.split(".")[-2]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _forget_previous(root: Path, source: str, key: str) -> None:
    """Delete the cache this source used before (its files or transform changed), so stale
    caches do not pile up. Open memory maps of it stay valid until closed (POSIX)."""
    pointer = root / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}.latest"
    try:
        previous = pointer.read_text().strip() if pointer.is_file() else ""
    except OSError:
        previous = ""
    if previous and previous != key:
        shutil.rmtree(root / previous, ignore_errors=True)
    atomic_write_text(pointer, key)
