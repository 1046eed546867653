"""Training the priors over a VQ-VAE run's code maps (`genlab prior RUN --kind ...`).

Each prior lives in `<run>/priors/<kind>/` (`Run.load_prior` reads it back): `prior.pt` (neural priors: weights + their config) or
`prior.npz` (the Gaussian mixture: arrays + JSON settings, no pickle), `metrics.csv` for the neural ones, and `summary.json`.
The neural priors train with Lightning on the train split and report the held-out bits per map
on the val split every epoch; `last.ckpt` lets an interrupted run continue (`resume=True`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from genlab.config import ExperimentConfig
from genlab.errors import GenlabError
from genlab.eval.codes import CodeMaps, load_code_maps
from genlab.io import atomic_path, atomic_write_json
from genlab.models.priors import PRIOR_KINDS
from genlab.models.priors.gmm import GMMPrior
from genlab.models.registry import build_neural_prior
from genlab.runs import ARRAY_PRIOR_FILE, NEURAL_PRIOR_FILE, Run
from genlab.safe_load import load_torch, save_arrays
from genlab.train.checkpoint_io import AtomicCheckpointIO
from genlab.train.metrics_log import RunMetricsLogger
from genlab.train.speed import resolve_precision

LN2 = float(torch.log(torch.tensor(2.0)))


class CodePriorModule(L.LightningModule):
    """Adam on a neural prior's per-position loss; logs bits per code map (exact or a bound)."""

    def __init__(self, net: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def _step(self, batch, stage: str) -> torch.Tensor:
        codes = batch[0]
        out = self.net.loss(codes)
        if stage == "train" and not torch.isfinite(out["loss"]):
            raise GenlabError(f"prior loss became {float(out['loss'])} at step {self.global_step}; "
                              "try a lower learning rate (model.priors.<kind>.lr)")
        nll = out["nll"]  # exact for the PixelCNN, the negative ELBO (a bound) for the code VAE
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, on_step=stage == "train", on_epoch=True,
                 batch_size=len(codes))
        self.log(f"{stage}/bits_per_map", nll.mean() / LN2, prog_bar=stage == "val", on_step=False,
                 on_epoch=True, batch_size=len(codes))
        return out["loss"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


def _fit_gmm(cfg: ExperimentConfig, codes: CodeMaps, out: Path) -> dict[str, Any]:
    g = cfg.model.priors.gmm
    prior = GMMPrior(g.components, g.pca_dim, g.covariance, seed=cfg.trainer.seed)
    prior.fit(codes.indices[codes.split == "train"], codes.codebook)
    save_arrays(out / ARRAY_PRIOR_FILE, *prior.to_arrays())
    return {"pca_explained_variance": float(prior.pca.explained_variance_ratio_.sum()),
            "converged": bool(prior.gmm.converged_)}


def _fit_neural(kind: str, cfg: ExperimentConfig, codes: CodeMaps, out: Path, resume: bool,
                max_epochs: int | None, max_steps: int, max_minutes: float | None,
                progress: bool) -> dict[str, Any]:
    pc = getattr(cfg.model.priors, kind)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    net = build_neural_prior(kind, cfg, codes.grid)
    module = CodePriorModule(net, pc.lr)
    train = DataLoader(TensorDataset(codes.of_split("train")), batch_size=pc.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(cfg.trainer.seed))
    val = DataLoader(TensorDataset(codes.of_split("val")), batch_size=pc.batch_size)
    ckpt = ModelCheckpoint(dirpath=out, filename="best", monitor="val/bits_per_map", mode="min", save_last=True,
                           enable_version_counter=False, auto_insert_metric_name=False)
    # Lightning's max_time may stop mid-epoch; that epoch's validation still runs, so the kept
    # checkpoint is scored on the held-out maps
    trainer = L.Trainer(max_epochs=max_epochs or pc.epochs, max_steps=max_steps,
                        max_time=None if max_minutes is None else {"seconds": 60 * max_minutes},
                        accelerator=cfg.trainer.accelerator,
                        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
                        devices=1, logger=RunMetricsLogger(out), callbacks=[ckpt], plugins=[AtomicCheckpointIO()],
                        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                        log_every_n_steps=10)
    last = out / "last.ckpt"
    trainer.fit(module, train, val, ckpt_path=str(last) if resume and last.is_file() else None)
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else last
    state = load_torch(best, "checkpoint")["state_dict"]
    module.load_state_dict(state)
    with atomic_path(out / NEURAL_PRIOR_FILE) as tmp:
        torch.save({"kind": kind, "grid": list(codes.grid), "config": cfg.to_dict(),
                    "state_dict": net.state_dict()}, tmp)
    return {"epochs": trainer.current_epoch, "steps": trainer.global_step,
            "val_bits_per_map": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None}


def train_prior(run_dir: str | Path, kind: str, cfg: ExperimentConfig | None = None, resume: bool = False,
                max_epochs: int | None = None, max_steps: int = -1, max_minutes: float | None = None,
                progress: bool = True) -> Path:
    """Fit one prior on the run's code maps (train split); returns its folder."""
    if kind not in PRIOR_KINDS:
        raise GenlabError(f"unknown prior kind {kind!r} (choose from {', '.join(PRIOR_KINDS)})")
    if max_minutes is not None and max_minutes <= 0:
        raise GenlabError(f"max_minutes must be positive, got {max_minutes}")
    run = Run.open(run_dir)
    cfg = cfg or run.config()
    if cfg.model.name != "vqvae":
        raise GenlabError(f"{run.path}: priors need a VQ-VAE run, this one trains {cfg.model.name!r}")
    codes = load_code_maps(run.path)
    if codes.num_codes != cfg.model.num_codes:
        raise GenlabError(f"{run.path}/codes/codes.npz has {codes.num_codes} codes but the run's config "
                          f"{cfg.model.num_codes}; rewrite it with `genlab codes {run.path}`")
    out = run.prior_dir(kind)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if kind == "gmm":
        info = _fit_gmm(cfg, codes, out)
    else:
        info = _fit_neural(kind, cfg, codes, out, resume, max_epochs, max_steps, max_minutes, progress)
    summary = {"kind": kind, "train_maps": int((codes.split == "train").sum()),
               "val_maps": int((codes.split == "val").sum()), "seconds": round(time.perf_counter() - t0, 1),
               "config": getattr(cfg.model.priors, kind).model_dump(), **info}
    atomic_write_json(out / "summary.json", summary)
    return out
