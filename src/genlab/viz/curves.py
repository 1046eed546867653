"""Training curves from a run's metrics.csv, with matplotlib."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genlab.io import atomic_path  # noqa: E402


def read_metrics(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """metrics.csv -> {column: [(step, value), ...]} for every non-empty numeric cell."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                try:
                    series[key].append((step, float(value)))
                except ValueError:
                    continue
    return dict(series)


def plot_curves(metrics_csv: str | Path, out: str | Path, panels: dict[str, list[str]],
                title: str = "") -> Path | None:
    """One subplot per panel; each panel draws the listed columns that exist (train and val)."""
    series = read_metrics(metrics_csv)
    panels = {name: [c for c in cols if c in series] for name, cols in panels.items()}
    panels = {name: cols for name, cols in panels.items() if cols}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (name, cols) in zip(axes[0], panels.items()):
        for col in cols:
            steps, values = zip(*series[col])
            style = "o-" if col.endswith("_epoch") or col.startswith("val/") else "-"
            ax.plot(steps, values, style, label=col, markersize=3, linewidth=1.2, alpha=0.9)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out, title, dpi=110)


def plot_comparison(series: dict[str, dict[str, dict[int, float]]], out: str | Path, title: str = "",
                    columns: int = 3) -> Path | None:
    """Several runs on the same axes: `series` is {run: {metric: {epoch: value}}}; one subplot per
    metric (any run has it), one line per run, epochs on x."""
    metrics = list(dict.fromkeys(m for per_run in series.values() for m in per_run))
    if not metrics:
        return None
    cols = min(columns, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for run, per_run in series.items():
            if per_run.get(metric):
                epochs = sorted(per_run[metric])
                ax.plot(epochs, [per_run[metric][e] for e in epochs], "o-", label=run, markersize=3, linewidth=1.2)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    return _save(fig, out, title, dpi=100)


def plot_epoch_curve(epochs: list[int], values: list[float], out: str | Path, *, ylabel: str, label: str,
                     best: tuple[int, float] | None = None, reference_epoch: int | None = None,
                     reference_label: str = "", title: str = "") -> Path:
    """One metric per epoch (1-based), its best point ringed, and a dashed vertical line at another
    source's reference epoch (e.g. the study's best epoch) with its label in the legend."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, values, "o-", label=label, markersize=4, linewidth=1.4)
    if best is not None:
        ax.plot([best[0]], [best[1]], "o", markersize=11, markerfacecolor="none", markeredgewidth=1.6,
                color="tab:green", label=f"best epoch: {best[0]}")
    if reference_epoch is not None:
        ax.axvline(reference_epoch, color="tab:red", linestyle="--", linewidth=1.2, label=reference_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_xticks(sorted(set(epochs) | ({reference_epoch} if reference_epoch is not None else set())))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out, title, dpi=110)


def _save(fig, out: str | Path, title: str, dpi: int) -> Path:
    """Title, tight layout, an atomic PNG write, and the figure closed."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return out
