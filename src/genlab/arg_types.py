"""Values typed at the command line, checked where they enter: argparse `type=` helpers for counts,
seeds, sizes and output paths. A bad value stops the command before anything loads, in one line
naming the option and what it accepts (argparse adds the option's name; exit status 2).

Each range helper keeps its bounds (`lo`, `hi`), so a test can walk every numeric option of the
parser and try values outside them. This module imports only the standard library (the parser
is built on every command, `genlab runs` included).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

SEED_MAX = 2**32 - 1  # numpy's and every sampler's seed range
MAX_IMAGES = 1_000_000  # images generated, scored or compared by one command
MAX_GRID = 10_000  # images in one sample grid (a 100x100 PNG)
MAX_BATCH = 65_536
MAX_EPOCHS = 1_000_000
MAX_NODES = 4096
MAX_CODES = 65_536  # codebook sizes: indices are stored as uint16
MAX_EVAL_SEEDS = 100  # repetitions of an evaluation, each a full run of its metrics


class IntRange:
    """A whole number in [lo, hi]."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.__name__ = "whole number"  # argparse's "invalid <name> value" for text that is no number

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({self.accepts()})") from None
        if not self.lo <= value <= self.hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({self.accepts()})")
        return value

    def accepts(self) -> str:
        return f"accepted: {self.lo:,} to {self.hi:,}"


class FloatRange:
    """A finite number in (lo, hi] (lo excluded: a span or a time limit of 0 means nothing)."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self.__name__ = "number"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({self.accepts()})") from None
        if not (math.isfinite(value) and self.lo < value <= self.hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range ({self.accepts()})")
        return value

    def accepts(self) -> str:
        return f"accepted: more than {self.lo:g}, at most {self.hi:g}"


def count(hi: int, lo: int = 1) -> IntRange:
    """How many of something: at least `lo` (1 unless 0 means 'none'), at most `hi`."""
    return IntRange(lo, hi)


seed = IntRange(0, SEED_MAX)


def writable_output(text: str) -> str:
    """An output file or folder that can be created: its nearest existing parent is a folder where a
    file can be written. Checked by creating (and at once removing) a temporary file there, because
    permissions alone do not tell (e.g. /proc takes no new files, even from root)."""
    path = Path(text).expanduser()
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder; choose another output path")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {parent} ({why}); choose a folder you can "
                                         "write to") from None
    return os.fspath(text)
