"""Small file-system helpers shared by every module: atomic writes, the cache folder, file checksums,
the PNG grid writer."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from genlab.errors import GenlabError

if TYPE_CHECKING:
    import torch


def cache_dir(*parts: str) -> Path:
    """Folder for derived data (rendered datasets, feature statistics), created on demand.

    `$GENLAB_CACHE` wins; otherwise `$XDG_CACHE_HOME/genlab` or `~/.cache/genlab`.
    """
    root = os.environ.get("GENLAB_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "genlab")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: str | os.PathLike, exc: OSError, kept: str = "") -> GenlabError:
    """One line for a failed write (disk full, read-only folder, no permission): what, why, the fix."""
    why = exc.strerror or type(exc).__name__
    hint = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
            errno.EROFS: "the folder is read-only; copy the run somewhere writable (or pass --out)",
            errno.EACCES: "no permission; copy the run somewhere writable (or pass --out)",
            errno.EPERM: "no permission; copy the run somewhere writable (or pass --out)"}.get(exc.errno, "")
    parts = [f"could not write {path} ({why})", kept, hint]
    return GenlabError("; ".join(p for p in parts if p))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, kept: str = "the previous version was kept") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Readers never see a half-written file, and a crash or a full disk leaves the old file intact:
    the temp file lives in the destination folder (a rename never crosses filesystems) and is
    fsynced before the rename. A failed write raises a one-line GenlabError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; a run's files are as readable as any other file the user creates
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise write_error(path, exc, kept if path.exists() else "") from None
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse to open folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (`algorithm`: any hashlib name, e.g. sha256, md5), read in
    1 MiB chunks so that a large download or weights file never sits in memory whole."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 10, padding: int = 2) -> Path:
    """Save images in [0, 1] (NCHW) as one PNG grid with `nrow` images per row, atomically.

    Here rather than in `genlab.viz` because `genlab.data` (dataset previews) may not import viz;
    torchvision is imported on first use so that this module stays cheap to import."""
    from torchvision.utils import make_grid, save_image

    path = Path(path)
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path
