"""The package's one progress bar (rich, transient) for long steps outside training: FID features,
the likelihood estimators, decoding an image cache, downloads.

On a terminal only (tests and pipes stay quiet), on stderr (stdout stays parseable, e.g. `genlab
fid`'s last line), and a no-op while another live display runs (Lightning's progress bar during
per-epoch FID): rich allows one live display at a time.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

# `--verbose`: Lightning's banners and warnings come back (an environment variable, so the worker
# processes DDP launches see it too). Here, not in genlab.train, so the CLI sets it without importing torch.
VERBOSE_ENV = "GENLAB_VERBOSE"


class Advance:
    """What `progress` yields: `advance(n)` moves the bar on by n; `advance.restart(total, completed)`
    sets both (a download learns its size from the server, and a resumed one starts part-way)."""

    def __init__(self, bar=None, task=None) -> None:
        self.bar, self.task = bar, task

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def restart(self, total: Optional[int], completed: int = 0) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=total, completed=completed)


@contextlib.contextmanager
def progress(description: Optional[str], total: Optional[int], *, unit: str = "items",
             enabled: bool = True, transient: bool = True) -> Iterator[Advance]:
    """Yields `advance(n)` (an `Advance`). `unit="bytes"` shows sizes and a transfer speed; a None
    `description` or `enabled=False` draws nothing; `transient=False` leaves the finished bar on screen."""
    if description is None or not enabled or not sys.stderr.isatty():
        yield Advance()
        return
    from rich.console import Console
    from rich.errors import LiveError
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    counts = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    bar = Progress(TextColumn("{task.description}"), BarColumn(), *counts, TimeRemainingColumn(),
                   console=Console(stderr=True), transient=transient)
    try:
        bar.start()
    except LiveError:
        yield Advance()
        return
    try:
        yield Advance(bar, bar.add_task(description, total=total))
    finally:
        bar.stop()
