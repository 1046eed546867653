"""Downloads that survive interruptions: HTTP Range resume of `<dest>.part`, checksum
verification, an atomic final rename, a rich progress bar; and safe archive extraction.

    path = fetch(url, Path("data/tinyimagenet/tiny-imagenet-200.zip"), md5="90528d7c...")
    extract(path, Path("data/tinyimagenet"))

A dropped connection is retried from where it stopped (a few times, then a GenlabError that
says to rerun the same command, which resumes again). A checksum mismatch deletes the
partial file, since resuming from bad bytes can never succeed.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from genlab.errors import GenlabError
from genlab.io import file_digest
from genlab.progress import Advance
from genlab.progress import progress as progress_bar

CHUNK = 1 << 16
USER_AGENT = "genlab-downloader"


class DownloadError(GenlabError):
    """A failed `fetch`: `reason` is the why alone (HTTP status, no connection, cut transfer,
    checksum), for callers that word their own one-line message around it."""

    def __init__(self, url: str, reason: str, advice: str) -> None:
        super().__init__(f"{url}: {reason}; {advice}")
        self.url, self.reason = url, reason



def _check(path: Path, sha256: Optional[str], md5: Optional[str]) -> Optional[str]:
    """None if `path` matches the given checksums, else a description of the mismatch."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return f"{algorithm} {got}, expected {expected}"
    return None


def fetch(url: str, dest: Path, sha256: str | None = None, progress: bool = True, *, md5: str | None = None,
          retries: int = 3, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` and return `dest`.

    An existing `dest` with the right checksum is kept as is. Bytes go to `dest.part` first; a
    `.part` left by an earlier attempt is resumed with an HTTP Range request (restarted from
    zero if the server ignores ranges). `dest` appears only once complete and verified.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 or md5) and _check(dest, sha256, md5) is None:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with progress_bar(dest.name, None, unit="bytes", enabled=progress, transient=False) as advance:
        for attempt in range(retries + 1):
            try:
                _get(url, part, advance, timeout)
                break
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code != 416 and exc.code < 500:
                    raise DownloadError(url, f"HTTP {exc.code} {exc.reason}", "check the address") from None
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise DownloadError(url, _why(exc, have, timeout),
                                        f"run the same command again to resume from {part}") from None
                time.sleep(min(2.0**attempt, 10.0) * 0.1)
    mismatch = _check(part, sha256, md5)
    if mismatch:
        part.unlink(missing_ok=True)
        raise DownloadError(url, f"checksum mismatch ({mismatch})", "the partial file was deleted, run the "
                            "command again to download afresh (or check the expected checksum)")
    os.replace(part, dest)  # atomic: readers see no file or the whole verified file
    return dest


def _why(exc: BaseException, have: int, timeout: float) -> str:
    """What went wrong, in words: no connection at all, a timeout, or a transfer cut short."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, TimeoutError):
        return f"no answer within {timeout:g} s (no network?)"
    if have == 0 and isinstance(exc, urllib.error.URLError):
        return f"cannot reach the server ({cause}; no network?)"
    return f"download interrupted after {have} bytes ({cause})"


def _get(url: str, part: Path, advance: Advance, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part is already whole
            return
        raise
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        advance.restart(total, completed=have)
        received = 0
        with open(part, "ab" if resumed else "wb") as fh:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                received += len(block)
                advance(len(block))
        if length is not None and received < int(length):
            raise ConnectionError(f"connection closed after {have + received} of {total} bytes")


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into `dest`, atomically per top-level entry: it is
    unpacked into a hidden temporary folder inside `dest`, then each entry is renamed into
    place, so an interrupted extraction never leaves a half-filled dataset folder behind.
    Members that would land outside `dest` (absolute paths, `..`) are refused."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".extract-{archive.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _refuse_escape(archive, name)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # refuses absolute paths, `..` and odd members
        else:
            raise GenlabError(f"{archive}: not a zip or tar archive; delete it and download again")
        for entry in sorted(tmp.iterdir()):
            target = dest / entry.name
            if target.exists():
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            os.replace(entry, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise GenlabError(f"{archive}: damaged archive ({exc}); delete it and download again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _refuse_escape(archive: Path, name: str) -> None:
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        raise GenlabError(f"{archive}: refusing to extract {name!r} (it points outside the destination)")
