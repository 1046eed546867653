"""A run directory holds everything about one run; evaluation and reports need nothing else.

    <run>/config.yaml        the validated config snapshot
    <run>/status.json        running | finished | failed | interrupted, with timestamps and a message
    <run>/metrics.csv        Lightning's CSV log (one row per logging step / epoch)
    <run>/checkpoints/       last.ckpt and best.ckpt
    <run>/samples/           per-epoch sample grids from fixed noise
    <run>/reconstructions/   per-epoch reconstruction grids
    <run>/plots/             loss curves and other figures
    <run>/eval/              evaluation tables (JSON)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genlab.config import ExperimentConfig, build_config, dump_config
from genlab.errors import GenlabError
from genlab.io import atomic_write_json, atomic_write_text

STATUSES = ("running", "finished", "failed", "interrupted")


@dataclass(frozen=True)
class Run:
    path: Path

    # --- layout -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def reconstructions(self) -> Path:
        return self.path / "reconstructions"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    # --- creation and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, cfg: ExperimentConfig) -> "Run":
        """A new, unique run directory under `cfg.output.runs_dir`, with the config snapshot."""
        root = Path(cfg.output.runs_dir)
        name = cfg.output.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, i = root / name, 1
        while path.exists():
            i += 1
            path = root / f"{name}-{i}"
        run = cls(path)
        run.prepare(cfg)
        return run

    def prepare(self, cfg: ExperimentConfig) -> None:
        for folder in (self.checkpoints, self.samples, self.reconstructions, self.plots, self.eval):
            folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, dump_config(cfg))

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        run = cls(Path(path))
        if not run.config_path.is_file():
            raise GenlabError(f"{path}: not a genlab run directory (no config.yaml); "
                              "pass the folder that `genlab train` printed")
        return run

    def config(self) -> ExperimentConfig:
        return build_config(yaml.safe_load(self.config_path.read_text()) or {}, str(self.config_path))

    # --- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        if not self.status_path.is_file():
            return {"status": "unknown"}
        return json.loads(self.status_path.read_text())

    def set_status(self, status: str, **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        record = {k: v for k, v in self.status().items() if k != "status"}
        record.update(status=status, updated=time.strftime("%Y-%m-%dT%H:%M:%S"), **extra)
        atomic_write_json(self.status_path, record)

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint (by validation metric), falling back to the last one."""
        order = [self.best_checkpoint, self.last_checkpoint] if which == "best" else [self.last_checkpoint]
        for path in order:
            if path.is_file():
                return path
        raise GenlabError(f"{self.path}: no checkpoint in {self.checkpoints} (did training start?)")
