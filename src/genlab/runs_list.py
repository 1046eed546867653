"""What a run amounts to, in one row: `genlab runs [DIR]` and the report's comparison table.

Reads only the run directory: config.yaml, status.json and metrics.csv.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from genlab.errors import GenlabError
from genlab.models.registry import monitor_of
from genlab.runs import Run


@dataclass
class EpochMetrics:
    """Epoch-level metrics of a run: {metric: {epoch (1-based): value}}, in column order."""

    columns: list[str] = field(default_factory=list)
    values: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def epochs(self) -> list[int]:
        return sorted({e for col in self.values.values() for e in col})

    def last(self, column: str) -> float | None:
        col = self.values.get(column) or {}
        return col[max(col)] if col else None

    def best(self, column: str, mode: str) -> tuple[int, float] | None:
        col = {e: v for e, v in (self.values.get(column) or {}).items() if math.isfinite(v)}
        if not col:
            return None
        pick = max if mode == "max" else min
        epoch = pick(col, key=col.get)
        return epoch, col[epoch]


def read_epoch_metrics(path: str | Path) -> EpochMetrics:
    """The columns of Lightning's metrics.csv logged once per epoch (`*_step` columns and columns
    with several values in one epoch are per-step and left out). Epochs count from 1."""
    path = Path(path)
    if not path.is_file():
        return EpochMetrics()
    per_epoch: dict[str, dict[int, list[float]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            try:
                epoch = int(float(row.get("epoch") or "nan")) + 1
            except ValueError:
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or not value or key.endswith("_step"):
                    continue
                try:
                    per_epoch.setdefault(key, {}).setdefault(epoch, []).append(float(value))
                except ValueError:
                    continue
        order = list(reader.fieldnames or [])
    keep = [c for c in order if c in per_epoch and all(len(v) == 1 for v in per_epoch[c].values())]
    keep.sort(key=lambda c: (not c.startswith("val/"), not c.endswith("_epoch"), order.index(c)))
    return EpochMetrics(keep, {c: {e: v[0] for e, v in per_epoch[c].items()} for c in keep})


@dataclass
class RunSummary:
    path: Path
    name: str
    model: str = "?"
    dataset: str = "?"
    status: str = "unknown"
    epochs_done: int | None = None
    max_epochs: int | None = None
    headline: str = ""               # the monitored metric, e.g. "val/elbo"
    mode: str = "min"
    best: tuple[int, float] | None = None
    metrics: EpochMetrics = field(default_factory=EpochMetrics)
    message: str = ""
    error: str = ""                  # a run that cannot be read is still listed, with the reason

    @property
    def epochs(self) -> str:
        done = "?" if self.epochs_done is None else str(self.epochs_done)
        return f"{done}/{self.max_epochs}" if self.max_epochs else done

    @property
    def headline_text(self) -> str:
        if not self.best:
            return "-"
        epoch, value = self.best
        return f"{self.headline} {'max' if self.mode == 'max' else 'min'} {value:.5g} (epoch {epoch})"


def summarise(path: str | Path) -> RunSummary:
    run = Run.open(path)
    summary = RunSummary(path=run.path, name=run.path.name)
    status = run.status()
    summary.status = status.get("status", "unknown")
    summary.message = status.get("message", "") or ""
    summary.metrics = read_epoch_metrics(run.metrics_path)
    try:
        cfg = run.config()
    except GenlabError as exc:
        summary.error = str(exc)
        return summary
    summary.model, summary.dataset, summary.max_epochs = cfg.model.name, cfg.data.name, cfg.trainer.max_epochs
    summary.epochs_done = status.get("epoch", max(summary.metrics.epochs, default=None))
    summary.headline, summary.mode = monitor_of(cfg.model.name)
    summary.best = summary.metrics.best(summary.headline, summary.mode)
    return summary


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (folders with a config.yaml) at `root` or up to two levels below it."""
    root = Path(root)
    if not root.is_dir():
        raise GenlabError(f"{root}: no such folder; pass the runs folder (output.runs_dir, default 'runs')")
    if (root / "config.yaml").is_file():
        return [root]
    found = [p.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for p in root.glob(pattern)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    return [summarise(p) for p in find_runs(root)]


STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "interrupted": "yellow"}


def runs_table(summaries: list[RunSummary], title: str = ""):
    from rich.table import Table

    table = Table(title=title or None)
    for col in ("run", "model", "dataset", "epochs", "status", "headline metric"):
        table.add_column(col, overflow="fold")
    for s in summaries:
        style = STATUS_STYLE.get(s.status, "")
        status = f"[{style}]{s.status}[/]" if style else s.status
        table.add_row(s.name, s.model, s.dataset, s.epochs, status, s.error or s.headline_text)
    return table
