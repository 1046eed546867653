"""`genlab report RUN [RUN ...]`: a self-contained HTML page about one run, or comparing several.

The page needs no network: images are linked relative to the page (a run's own report lives in
the run, so nothing is copied), copied into `report_assets/` beside the page when they live
elsewhere, or embedded as data URIs with `embed=True` (one file to mail around). Every section
is optional: what the run has not written is left out.
"""

from __future__ import annotations

import base64
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from genlab.defaults import DISENTANGLE_FIGURES, DISENTANGLE_RESULT
from genlab.errors import GenlabError
from genlab.io import atomic_path, atomic_write_text
from genlab.runs import Run
from genlab.runs_list import RunSummary, summarise
from genlab.viz.tables import Block, Cell, fmt, json_file_blocks

ASSETS = "report_assets"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".webp": "image/webp"}
MAX_EVAL_FIGURES = 24  # eval/ may hold many images (e.g. FID sample folders); show a few
EPOCH_FILE = re.compile(r"epoch_(\d+)\.\w+$")


@dataclass
class Picture:
    src: str
    caption: str


@dataclass
class Gallery:
    title: str
    slider: list[Picture] = field(default_factory=list)   # per-epoch images, one shown at a time
    pictures: list[Picture] = field(default_factory=list)  # everything else, side by side
    note: str = ""


@dataclass
class RunView:
    summary: RunSummary
    anchor: str
    config_text: str
    metrics: Block | None
    galleries: list[Gallery]
    tables: list[tuple[str, list[Block]]]  # (title, blocks) per eval JSON file


class Assets:
    """Turns an image file into a `src` the page can use without a network."""

    def __init__(self, page: Path, embed: bool) -> None:
        self.root, self.embed = page.parent.resolve(), embed
        self.folder = self.root / ASSETS
        self._tmp: tempfile.TemporaryDirectory | None = None

    def src(self, path: Path, key: str) -> str:
        if self.embed:
            mime = IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:  # outside the page's folder: copy it beside the page
            dest = self.folder / key
            with atomic_path(dest) as tmp:
                shutil.copyfile(path, tmp)
            rel = dest.relative_to(self.root)
        return quote(rel.as_posix())

    def new_figure(self, name: str) -> Path:
        """Where to draw a figure made for this page (a temporary file when embedding)."""
        if self.embed:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="genlab-report-")
            return Path(self._tmp.name) / name
        return self.folder / name

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


# --- collecting what a run has -----------------------------------------------------------------
def _images(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_TYPES and not p.name.startswith("."))


def _epoch_caption(path: Path) -> str:
    m = EPOCH_FILE.search(path.name)
    return f"epoch {int(m.group(1)) + 1}" if m else path.stem.replace("_", " ")


def _gallery(title: str, folders: Sequence[Path], assets: Assets, key: str, recursive: bool = False,
             limit: int | None = None, exclude: Sequence[Path] = ()) -> Gallery | None:
    """Per-epoch images (epoch_NNN.png) go on a slider, the others side by side; images under an
    `exclude` folder are left out (another gallery shows them)."""
    files = [(folder, p) for folder in folders for p in _images(folder, recursive)
             if not any(p.is_relative_to(x) for x in exclude)]
    if not files:
        return None
    per_epoch = [(f, p) for f, p in files if EPOCH_FILE.fullmatch(p.name)]
    others = [(f, p) for f, p in files if not EPOCH_FILE.fullmatch(p.name)]
    note = ""
    if limit is not None and len(others) > limit:
        note = f"showing {limit} of {len(others)} images in {', '.join(str(f) for f in folders)}"
        others = others[:limit]

    def pic(folder: Path, p: Path, caption: str) -> Picture:
        return Picture(assets.src(p, f"{key}/{folder.name}/{p.relative_to(folder).as_posix()}"), caption)

    return Gallery(title, [pic(f, p, _epoch_caption(p)) for f, p in per_epoch],
                   [pic(f, p, p.relative_to(f).with_suffix("").as_posix().replace("_", " ")) for f, p in others],
                   note)


def _metrics_block(summary: RunSummary) -> Block | None:
    m = summary.metrics
    if not m.columns:
        return None
    best = summary.best[0] if summary.best else None
    rows = []
    for epoch in m.epochs:
        cells = [Cell(str(epoch), True)]
        for col in m.columns:
            cell = fmt(m.values[col].get(epoch))
            if col == summary.headline and epoch == best:
                cell.text += " ★"
            cells.append(cell)
        rows.append(cells)
    return Block("metrics per epoch", "table", ["epoch", *m.columns], rows)


def _anchor(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "run"
    anchor, i = base, 1
    while anchor in taken:
        i += 1
        anchor = f"{base}-{i}"
    taken.add(anchor)
    return anchor


def collect(run: Run, assets: Assets, anchor: str) -> RunView:
    summary = summarise(run.path)
    key = anchor
    galleries = [
        _gallery("Samples through training", [run.samples], assets, key),
        _gallery("Reconstructions (originals above their reconstructions)", [run.reconstructions], assets, key),
        # `genlab traverse` writes RUN/plots/traverse/; RUN/traversals/ is accepted too
        _gallery("Latent traversals and interpolations", [run.plots / "traverse", run.path / "traversals"],
                 assets, key, recursive=True),
        _gallery("Curves", [run.plots], assets, key),
        # `genlab disentangle`: the latent-by-factor MI heatmap and the labelled traversals (PNG, GIF)
        _gallery("Disentanglement: mutual information and traversals per latent", [run.eval / DISENTANGLE_FIGURES],
                 assets, key),
        _gallery("Evaluation figures", [run.eval], assets, key, recursive=True, limit=MAX_EVAL_FIGURES,
                 exclude=[run.eval / DISENTANGLE_FIGURES]),
    ]
    tables = []
    json_files = sorted(run.eval.rglob("*.json")) if run.eval.is_dir() else []
    # loglik.json / bdmc.json are the latest of their timestamped copies: show those, not the history
    json_files = [p for p in json_files if not re.fullmatch(r"(loglik|bdmc)-\d{8}T\d{6}Z(-\d+)?\.json", p.name)]
    json_files.sort(key=lambda p: p.name != "loglik.json")  # the likelihood table first
    for path in json_files:
        rel = path.relative_to(run.eval).with_suffix("").as_posix()
        if path.name == DISENTANGLE_RESULT:
            tables.append((f"Disentanglement ({path.relative_to(run.path).as_posix()})", disentanglement_blocks(path)))
            continue
        title = "Log-likelihood" if rel == "loglik" else rel.replace("_", " ")
        tables.append((f"{title} ({path.relative_to(run.path).as_posix()})", json_file_blocks(path)))
    config_text = run.config_path.read_text() if run.config_path.is_file() else ""
    return RunView(summary, anchor, config_text, _metrics_block(summary), [g for g in galleries if g], tables)


def disentanglement_blocks(path: Path) -> list[Block]:
    """`genlab disentangle`'s result: each metric's median [min, max] over the seeds and the protocol
    first, then the whole file."""
    import json

    try:
        result = json.loads(path.read_text())
        spreads, protocol = result["spread"], result["protocol"]
        rows = [[Cell(key), fmt(s["median"]), Cell(f"[{s['min']:.4g}, {s['max']:.4g}]"), Cell(str(len(s["values"])))]
                for key, s in spreads.items()]
        head = [Block(f"metrics (protocol {protocol['name']}, seeds {protocol['seeds']})", "table",
                      ["metric", "median", "[min, max]", "seeds"], rows)]
    except (OSError, ValueError, KeyError, TypeError):
        head = []
    return head + json_file_blocks(path)


# --- comparing runs ----------------------------------------------------------------------------
def _flatten(obj, prefix: str = "") -> dict[str, str]:
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: fmt(obj).text}


def config_differences(runs: Sequence[Run]) -> Block | None:
    import yaml

    flat = [_flatten(yaml.safe_load(r.config_path.read_text()) or {}) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differing = [k for k in keys if len({f.get(k, "–") for f in flat}) > 1]
    if not differing:
        return None
    return Block("config differences", "table", ["key", *[r.path.name for r in runs]],
                 [[Cell(k), *[Cell(f.get(k, "–")) for f in flat]] for k in differing])


def comparison_block(views: Sequence[RunView]) -> Block:
    columns = list(dict.fromkeys(c for v in views for c in v.summary.metrics.columns))
    rows = []
    for v in views:
        s = v.summary
        rows.append([Cell(s.name), Cell(s.model), Cell(s.dataset), Cell(s.epochs), Cell(s.status),
                     Cell(s.headline_text), *[fmt(s.metrics.last(c)) for c in columns]])
    return Block("runs (metrics at their last epoch)", "table",
                 ["run", "model", "dataset", "epochs", "status", "headline (best)", *columns], rows)


# --- the page ----------------------------------------------------------------------------------
def _page_path(runs: Sequence[Run], out: str | Path | None) -> Path:
    if out is not None:
        out = Path(out)
        return out if out.suffix.lower() in (".html", ".htm") else out / "report.html"
    if len(runs) == 1:
        return runs[0].report
    return runs[0].path.parent / f"compare-{time.strftime('%Y%m%d-%H%M%S')}" / "report.html"


def render_template(name: str, context: dict) -> str:
    """One of genlab/viz/templates/, autoescaped, strict about missing names."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name).render(**context)


def render(context: dict) -> str:
    return render_template("report.html.j2", context)


def write_report(runs: Sequence[str | Path], out: str | Path | None = None, embed: bool = False) -> Path:
    """Write the report of one run (default: RUN/report.html) or the comparison of several
    (default: a new compare-<time>/report.html beside the first run). `out` is a folder or an
    .html path. Returns the page."""
    if not runs:
        raise GenlabError("genlab report needs at least one run directory")
    opened = [Run.open(r) for r in runs]
    page = _page_path(opened, out)
    page.parent.mkdir(parents=True, exist_ok=True)
    assets = Assets(page, embed)
    try:
        taken: set[str] = set()
        views = [collect(r, assets, _anchor(r.path.name, taken)) for r in opened]
        comparison = None
        if len(views) > 1:
            from genlab.viz.curves import plot_comparison

            series = {v.summary.name: v.summary.metrics.values for v in views}
            figure = plot_comparison(series, assets.new_figure("compare_curves.png"))
            comparison = {
                "table": comparison_block(views),
                "config": config_differences(opened),
                "curves": Picture(assets.src(figure, "compare_curves.png"), "epoch-level metrics of every run")
                if figure else None,
            }
        from genlab import __version__

        title = views[0].summary.name if len(views) == 1 else f"comparison of {len(views)} runs"
        html = render({"title": title, "views": views, "comparison": comparison, "version": __version__,
                       "generated": time.strftime("%Y-%m-%d %H:%M:%S")})
    finally:
        assets.close()
    atomic_write_text(page, html)
    return page
