"""Getting a weights file on first use, safely: `download_weights(url, dest, check=...)`.

The FID Inception weights (`genlab.eval.features.resolve_weights`) come through here when no
file is found; `genlab data download inception` calls it ahead of time. The bytes come from
`genlab.data.download.fetch` into a temporary file beside `dest`, which becomes `dest` (one
`os.replace`) only once its SHA-256 and its contents are verified, so pytorch-fid and
torch-fidelity, which read the same torch hub file, never see a bad one. A lock file beside
`dest` makes a second process wait for the first one's download instead of starting its own or
reading half a file. A failed download keeps nothing, is one line (why, the URL, where to put
the file by hand), and is not retried in the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterator

from genlab.errors import GenlabError

OFFLINE_ENV = "GENLAB_OFFLINE"  # 1: never download (compute nodes without internet)
URL_ENV = "GENLAB_FID_WEIGHTS_URL"  # a mirror of the FID weights
SHA256_ENV = "GENLAB_FID_WEIGHTS_SHA256"  # the mirror file's full SHA-256 (replaces the name's prefix check)
# A dead network fails within this many seconds (per socket operation) instead of hanging.
TIMEOUT_S = 15.0

_failed: dict[tuple[str, str], GenlabError] = {}  # (url, dest) -> the error: one try per process


def offline() -> bool:
    """$GENLAB_OFFLINE (or a command's --offline, which sets it) forbids every download."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def name_hash_prefix(name: str) -> str | None:
    """The hash prefix in a torch hub file name (`...-6726825d.pth` -> `6726825d`), as torch hub's
    `check_hash` reads it; None if the name has none."""
    match = re.search(r"-([a-f0-9]+)\.", name)
    return match.group(1) if match else None


def download_weights(url: str, dest: Path, check: Callable[[Path], None], *, sha256: str | None = None,
                     progress: bool = True, timeout: float | None = None) -> Path:
    """Download `url` to `dest` unless it is there, verify it, and return `dest`.

    Verified means: the SHA-256 equals `sha256` if given, else begins with the hash prefix in
    `dest`'s name; then `check(path)` (raising GenlabError with the reason) accepts the contents.
    """
    dest = Path(dest)
    timeout = TIMEOUT_S if timeout is None else timeout
    key = (url, str(dest))
    if key in _failed:
        raise _failed[key]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(dest.with_name(dest.name + ".lock"), dest):
            if dest.is_file():  # another process finished it while this one waited
                return dest
            _download_verified(url, dest, check, sha256, progress, timeout)
    except _Failed as exc:
        _failed[key] = GenlabError(
            f"could not download the FID weights: {exc} (from {url}); nothing was kept. Download the file by "
            f"hand and put it at {dest}, or pass --weights FILE")
        raise _failed[key] from None
    except OSError as exc:  # a cache folder we may not write to
        _failed[key] = GenlabError(f"could not download the FID weights to {dest} ({exc.strerror or exc}); "
                                   f"download {url} by hand and pass --weights FILE (or set GENLAB_FID_WEIGHTS)")
        raise _failed[key] from None
    return dest


class _Failed(Exception):
    """Why a download was rejected (the message is only the reason)."""


def _download_verified(url: str, dest: Path, check: Callable[[Path], None], sha256: str | None,
                       progress: bool, timeout: float) -> None:
    from genlab.data.download import DownloadError, fetch, file_digest
    from genlab.io import atomic_path

    with atomic_path(dest) as tmp:  # nothing at `dest` unless this block completes
        part = tmp.with_name(tmp.name + ".part")  # fetch's own partial file
        try:
            fetch(url, tmp, progress=progress, retries=0, timeout=timeout)
        except DownloadError as exc:
            raise _Failed(exc.reason) from None
        finally:
            part.unlink(missing_ok=True)
        if _looks_like_html(tmp):
            raise _Failed("the server sent an HTML page, not the weights file")
        got = file_digest(tmp, "sha256")
        if sha256:
            if got != sha256.strip().lower():
                raise _Failed(f"checksum mismatch: sha256 {got}, expected {sha256.strip()} (${SHA256_ENV})")
        else:
            prefix = name_hash_prefix(dest.name)
            if prefix and not got.startswith(prefix):
                raise _Failed(f"checksum mismatch: sha256 {got} does not begin with {prefix} (the hash in "
                              f"{dest.name}); a mirror's own file needs ${SHA256_ENV}")
        try:
            check(tmp)
        except GenlabError as exc:
            raise _Failed(str(exc)) from None


def _looks_like_html(path: Path) -> bool:
    # A captive portal or an error page saved as `.pth`: torch files are zip or pickle, never `<`.
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


@contextlib.contextmanager
def _exclusive(lock: Path, dest: Path) -> Iterator[None]:
    """Hold an flock on `lock`; the holder removes the file before letting go, and a waiter that
    then holds a removed file's lock tries again (so no two processes ever hold it together)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process downloading {dest.name} ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
