"""A transient rich progress bar for long steps outside training (FID features, evaluations).

On a terminal only (tests and pipes stay quiet), on stderr (stdout stays parseable, e.g. `genlab
fid`'s last line), and a no-op while another live display runs (Lightning's progress bar during
per-epoch FID): rich allows one live display at a time.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, Optional

# `--verbose`: Lightning's banners and warnings come back (an environment variable, so the worker
# processes DDP launches see it too). Here, not in genlab.train, so the CLI sets it without importing torch.
VERBOSE_ENV = "GENLAB_VERBOSE"


@contextlib.contextmanager
def progress(description: str, total: Optional[int]) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.errors import LiveError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    try:
        bar.start()
    except LiveError:
        yield lambda n: None
        return
    try:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()
