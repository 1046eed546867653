"""Any JSON table a run writes under RUN/eval/ -> blocks the report renders as HTML tables.

Nobody has to register a format: a list of row dicts is a table, a dict's scalars are a key/value
table, same-length lists in a dict are columns, nested dicts and lists become their own blocks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DEPTH = 4


@dataclass
class Cell:
    text: str
    numeric: bool = False


@dataclass
class Block:
    title: str
    kind: str                                   # "table" (with header), "kv" (key/value) or "text"
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    text: str = ""


def fmt(value: Any) -> Cell:
    if value is None:
        return Cell("–")
    if isinstance(value, bool):
        return Cell(str(value).lower())
    if isinstance(value, int):
        return Cell(str(value), True)
    if isinstance(value, float):
        if not math.isfinite(value):
            return Cell(str(value), True)
        return Cell(f"{value:.1f}" if 1e4 <= abs(value) < 1e7 else f"{value:.5g}", True)  # nats keep a decimal
    if isinstance(value, str):
        return Cell(value)
    if _scalar_list(value):
        return Cell(", ".join(fmt(v).text for v in value))
    return Cell(json.dumps(value, default=str))


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(_scalar(v) for v in value)


def _rows_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _flatten(row: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in row.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _se_pairs(columns: list[str]) -> dict[str, str]:
    """Standard-error columns and the value column each belongs to: `x_se` goes with `x`, and
    `est.se` with the column before it in the same group (`est.log_px`)."""
    pairs = {}
    for i, col in enumerate(columns):
        if col.endswith("_se") and col[:-3] in columns:
            pairs[col] = col[:-3]
        elif col.endswith(".se") and i and columns[i - 1].startswith(col[:-2]) and columns[i - 1] not in pairs:
            pairs[col] = columns[i - 1]
    return pairs


def _table(title: str, rows: list[dict]) -> Block:
    """Nested dicts in rows become dotted columns, all-empty columns are dropped, and a value and
    its standard error share one cell: `-1234.5 ± 0.12`."""
    rows = [_flatten(row) for row in rows]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    columns = [c for c in columns if any(row.get(c) is not None for row in rows)]
    pairs = _se_pairs(columns)
    se_of = {value: se for se, value in pairs.items()}
    shown = [c for c in columns if c not in pairs]
    body = []
    for row in rows:
        cells = []
        for col in shown:
            cell = fmt(row.get(col))
            if col in se_of and row.get(se_of[col]) is not None:
                cell.text += f" ± {fmt(row[se_of[col]]).text}"
            cells.append(cell)
        body.append(cells)
    return Block(title, "table", [f"{c} ± se" if c in se_of else c for c in shown], body)


def _join(title: str, key: str) -> str:
    return f"{title} › {key}" if title else str(key)


def to_blocks(obj: Any, title: str = "", depth: int = 0) -> list[Block]:
    if depth > MAX_DEPTH:
        return [Block(title, "text", text=json.dumps(obj, indent=1, default=str))]
    if _rows_of_dicts(obj):
        return [_table(title, obj)]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return [_table(title, [{"": k, **v} for k, v in obj.items()])]  # {name: {...}}: one row per name
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if _scalar(v)}
        lists = {k: v for k, v in obj.items() if _scalar_list(v) and v}
        lengths = {len(v) for v in lists.values()}
        as_columns = len(lists) >= 2 and len(lengths) == 1 and lengths.pop() >= 2
        blocks = []
        if as_columns:  # {"image": [...], "log_px": [...]}: a column-oriented table
            n = len(next(iter(lists.values())))
            blocks.append(_table(title, [{k: v[i] for k, v in lists.items()} for i in range(n)]))
        else:
            scalars.update(lists)
        if scalars:
            blocks.insert(0, Block(title, "kv", ["key", "value"],
                                   [[Cell(str(k)), fmt(v)] for k, v in obj.items() if k in scalars]))
        nested = [(k, v) for k, v in obj.items()
                  if k not in scalars and not (as_columns and k in lists) and v not in ([], {})]
        nested.sort(key=lambda kv: not _rows_of_dicts(kv[1]))  # the data (row tables) before metadata
        for key, value in nested:
            blocks += to_blocks(value, _join(title, key), depth + 1)
        return blocks
    if isinstance(obj, list):
        if all(_scalar_list(v) for v in obj) and obj:
            width = max(len(v) for v in obj)
            return [Block(title, "table", [str(i) for i in range(width)],
                          [[fmt(v[i]) if i < len(v) else Cell("") for i in range(width)] for v in obj])]
        if _scalar_list(obj):
            return [Block(title, "kv", ["key", "value"], [[Cell("values"), fmt(obj)]])]
        blocks = []
        for i, value in enumerate(obj):
            blocks += to_blocks(value, _join(title, f"[{i}]"), depth + 1)
        return blocks
    return [Block(title, "kv", ["key", "value"], [[Cell("value"), fmt(obj)]])]


def json_file_blocks(path: str | Path, title: str = "") -> list[Block]:
    """The blocks of one JSON file; a file that cannot be read is one text block saying why."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [Block(title or path.name, "text", text=f"could not read {path}: {exc}")]
    return to_blocks(obj)
