"""Render a terminal recording (`script -qfc "make demo" demo.typescript`) as it looked on screen.

    python docs/terminal.py demo.typescript --width 120 --svg docs/terminal.svg --text docs/terminal.txt
    python docs/terminal.py demo.typescript --at 0.3 --svg docs/terminal-live.svg   # 30% into the recording

A tiny terminal emulator, enough for rich's output: carriage return, erase line (ESC[2K), cursor up
(ESC[nA), colours kept (SGR), other control sequences dropped. The screen is then drawn by rich's own
SVG export. Needs only rich.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from rich.console import Console
from rich.text import Text

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
BAR_END = re.compile(r"img/s: [\d,]+(\x1b\[0m)?")


def screen(data: str) -> list[str]:
    """The lines on screen (with their SGR colour codes) after writing `data` to a terminal."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == "\x1b":
            m = CSI.match(data, i)
            if m is None:
                i += 1
                continue
            args, cmd = m.groups()
            if cmd == "m":  # colours: kept in the line (they take no column)
                lines[row] = _insert(lines[row], col, m.group(0))
            elif cmd == "K":  # erase line (rich uses ESC[2K)
                lines[row] = ""
                col = 0
            elif cmd == "A":
                row = max(0, row - int(args or 1))
            i = m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        elif ch >= " ":
            lines[row] = _overwrite(lines[row], col, ch)
            col += 1
        i += 1
    return lines


def _visible(line: str) -> str:
    return CSI.sub("", line)


def _split_at(line: str, col: int) -> tuple[str, str]:
    """`line` cut at visible column `col` (codes stay with the text before them)."""
    seen = 0
    for m in re.finditer(r"\x1b\[[0-9;]*m|.", line, flags=re.S):
        if len(m.group(0)) == 1:
            if seen == col:
                return line[: m.start()], line[m.start():]
            seen += 1
    return line + " " * (col - seen), ""


def _insert(line: str, col: int, code: str) -> str:
    head, tail = _split_at(line, col)
    return head + code + tail


def _overwrite(line: str, col: int, ch: str) -> str:
    head, tail = _split_at(line, col)
    if tail:
        m = re.match(r"((?:\x1b\[[0-9;]*m)*).", tail, flags=re.S)
        tail = tail[m.end():] if m else tail
        return head + (m.group(1) if m else "") + ch + tail
    return head + ch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("typescript", help="the recording, from `script -qfc COMMAND FILE`")
    p.add_argument("--width", type=int, default=120, help="terminal columns (default: %(default)s)")
    p.add_argument("--at", type=float, default=1.0, help="fraction of the recording to play (default: all)")
    p.add_argument("--title", default="make demo", help="window title of the SVG (default: %(default)s)")
    p.add_argument("--svg", default=None, help="write the screen as an SVG here (default: none)")
    p.add_argument("--text", default=None, help="write the screen as plain text here (default: none)")
    args = p.parse_args()
    raw = Path(args.typescript).read_bytes().decode("utf-8", "replace")
    raw = re.sub(r"\AScript started on [^\n]*\n", "", raw)
    raw = re.sub(r"\n?Script done on [^\n]*\n?\Z", "", raw)
    cut = len(raw)
    if args.at < 1:  # the end of the last whole progress-bar frame (its img/s field) before that point
        ends = [m.end() for m in BAR_END.finditer(raw, 0, int(len(raw) * args.at))]
        cut = ends[-1] if ends else int(len(raw) * args.at)
    lines = screen(raw[:cut])
    while lines and not _visible(lines[-1]).strip():
        lines.pop()
    if args.text:
        Path(args.text).write_text("\n".join(_visible(line).rstrip() for line in lines) + "\n")
    if args.svg:
        console = Console(record=True, width=args.width, file=io.StringIO(), force_terminal=True)
        for line in lines:
            console.print(Text.from_ansi(line), soft_wrap=False, overflow="ellipsis", no_wrap=True)
        console.save_svg(args.svg, title=args.title)
    if not (args.svg or args.text):
        print("\n".join(_visible(line) for line in lines))


if __name__ == "__main__":
    main()
