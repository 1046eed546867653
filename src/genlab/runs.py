"""A run directory holds everything about one run; evaluation and reports need nothing else.

    <run>/config.yaml        the validated config snapshot
    <run>/status.json        running | finished | failed | interrupted, with timestamps and a message
    <run>/metrics.csv        Lightning's CSV log (one row per logging step / epoch)
    <run>/checkpoints/       last.ckpt and best.ckpt
    <run>/samples/           per-epoch sample grids from fixed noise
    <run>/reconstructions/   per-epoch reconstruction grids
    <run>/plots/             loss curves and other figures
    <run>/eval/              evaluation tables (JSON)
    <run>/priors/<kind>/     priors over a VQ-VAE run's code maps

`Run.load_model` and `Run.load_prior` give back plain nn.Modules (no Lightning needed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from genlab.config import ExperimentConfig, build_config, dump_config
from genlab.errors import GenlabError
from genlab.io import atomic_write_json, atomic_write_text, write_error

if TYPE_CHECKING:  # torch loads only when a model does: `genlab runs` and `genlab report` stay quick
    import torch
    from torch import nn

STATUSES = ("running", "finished", "failed", "interrupted")
# a prior's files in <run>/priors/<kind>/: mixtures as arrays + JSON settings, neural priors as weights
ARRAY_PRIOR_FILE = "prior.npz"
NEURAL_PRIOR_FILE = "prior.pt"
PICKLED_PRIOR_FILE = "prior.pkl"  # what older genlab versions wrote; refused (a pickle can run code)


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

    # --- one process per run ----------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for this process: a second process is refused naming the holder's PID.

        An flock dies with its process, so the lock of a killed run (kill -9) is simply taken
        over. The PID in the file is only the message; it is written in place because the lock
        is on this very file (an atomic rename would swap the locked inode)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.lock_path, exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise GenlabError(f"{self.path} is in use by another genlab process (PID {holder}); wait for "
                                  f"it to finish or stop it (kill {holder})") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

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

    def prior_dir(self, kind: str) -> Path:
        return self.path / "priors" / kind

    # --- trained models -----------------------------------------------------------------------
    def load_model(self, which: str = "best", device: str | torch.device = "cpu") -> nn.Module:
        """The run's trained model as a plain nn.Module (the contract of `genlab.models.contract`;
        a GAN samples from its EMA generator when it has one), in eval mode on `device`."""
        from genlab.checkpoints import checkpoint_config, model_from_checkpoint, read_checkpoint

        path = self.checkpoint(which)
        ckpt = read_checkpoint(path)
        cfg = self.config()
        # the checkpoint's own config describes its weights; config.yaml may carry later resume settings
        saved = checkpoint_config(ckpt, path) if ckpt["genlab"].get("model") == cfg.model.name else None
        return model_from_checkpoint(ckpt, saved or cfg, path, self.config_path).to(device)

    def load_prior(self, kind: str) -> Any:
        """A trained prior over this VQ-VAE run's code maps (the `CodePrior` protocol of
        `genlab.models.priors`), in eval mode on the CPU. Read without running code from the files."""
        from genlab.checkpoints import fill
        from genlab.models.priors import PRIOR_KINDS
        from genlab.models.registry import build_neural_prior
        from genlab.safe_load import load_arrays, load_torch

        if kind not in PRIOR_KINDS:
            raise GenlabError(f"unknown prior kind {kind!r} (choose from {', '.join(PRIOR_KINDS)})")
        folder = self.prior_dir(kind)
        if kind == "gmm":
            from genlab.models.priors.gmm import GMMPrior

            path = folder / ARRAY_PRIOR_FILE
            if not path.is_file():
                refuse_pickled_prior(folder, f"genlab prior {self.path} --kind gmm")
                raise GenlabError(f"{path} not found: fit it with `genlab prior {self.path} --kind gmm`")
            arrays, settings = load_arrays(path, "prior")
            try:
                return GMMPrior.from_arrays(arrays, settings)
            except (KeyError, TypeError, ValueError) as exc:
                raise GenlabError(f"{path}: not a Gaussian-mixture prior ({type(exc).__name__}: {exc}); refit it "
                                  f"with `genlab prior {self.path} --kind gmm`") from None
        path = folder / NEURAL_PRIOR_FILE
        if not path.is_file():
            raise GenlabError(f"{path} not found: train it with `genlab prior {self.path} --kind {kind}`")
        saved = load_torch(path, "prior")
        if not isinstance(saved, dict) or not {"config", "grid", "state_dict"} <= saved.keys():
            raise GenlabError(f"{path}: not a genlab prior; train it with `genlab prior {self.path} --kind {kind}`")
        net = build_neural_prior(kind, build_config(saved["config"], str(path)), tuple(saved["grid"]))
        return fill(net, lambda m: m.load_state_dict(saved["state_dict"]), path, f"its own config ({kind} prior)").eval()

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint (by validation metric), falling back to the last one."""
        order = [self.best_checkpoint, self.last_checkpoint] if which == "best" else [self.last_checkpoint]
        for path in order:
            if path.is_file():
                return path
        raise GenlabError(f"{self.path}: no checkpoint in {self.checkpoints} (did training start?)")


def refuse_pickled_prior(folder: Path, refit: str) -> None:
    """An old pickled prior in `folder` is refused (never unpickled), with the command that refits it."""
    old = folder / PICKLED_PRIOR_FILE
    if old.is_file():
        raise GenlabError(f"{old}: a pickled prior from an older genlab; a pickle can run code, so genlab no longer "
                          f"opens it; refit it with `{refit}`")
