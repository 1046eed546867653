"""Callbacks shared by every model: image grids, throughput, RNG state, interruption, status, optimiser settings."""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid

from genlab.config import OptimizerConfig
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.viz.grids import originals_over_reconstructions, save_grid


class ImageGrids(L.Callback):
    """Every N epochs: a 10x10 grid from fixed noise and originals above reconstructions of a fixed
    validation batch, as PNGs in the run and as TensorBoard images (`samples`, `reconstructions`, at the
    epoch's global step). Rank 0 only. Uses its own generator, so it never disturbs training's RNG."""

    def __init__(self, run: Run, every_n_epochs: int = 1, n: int = 100, seed: int = 0) -> None:
        self.run, self.every, self.n, self.seed = run, every_n_epochs, n, seed
        self.noise: torch.Tensor | None = None
        self.originals: torch.Tensor | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.noise = pl_module.net.noise(self.n, torch.Generator().manual_seed(self.seed)).cpu()
        val = trainer.datamodule.val_set if trainer.datamodule is not None else None
        if val is not None and len(val) > 0:
            idx = torch.linspace(0, len(val) - 1, min(50, len(val))).long().tolist()
            self.originals = torch.stack([val[i][0] for i in idx])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        if not trainer.is_global_zero or (epoch + 1) % self.every and not self._last_epoch(trainer):
            return
        self.write(pl_module, epoch)

    @staticmethod
    def _last_epoch(trainer: L.Trainer) -> bool:
        return trainer.current_epoch + 1 >= (trainer.max_epochs or 0)

    @torch.no_grad()
    def write(self, pl_module: Any, epoch: int) -> None:
        was_training = pl_module.training
        pl_module.eval()
        device = pl_module.device
        samples = pl_module.net.sample(self.noise.to(device))
        save_grid(samples, self.run.samples / f"epoch_{epoch:03d}.png", nrow=10)
        self.to_tensorboard(pl_module, "samples", samples, nrow=10)
        if self.originals is not None and pl_module.net.has_encoder:
            x = self.originals.to(device)
            per_row = min(10, x.shape[0])
            grid = originals_over_reconstructions(x, pl_module.net.reconstruct(x), per_row=per_row)
            save_grid(grid, self.run.reconstructions / f"epoch_{epoch:03d}.png", nrow=per_row)
            self.to_tensorboard(pl_module, "reconstructions (originals above)", grid, nrow=per_row)
        pl_module.train(was_training)

    @staticmethod
    def to_tensorboard(pl_module: Any, tag: str, images: torch.Tensor, nrow: int) -> None:
        for logger in pl_module.loggers:
            if isinstance(logger, TensorBoardLogger):
                grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
                logger.experiment.add_image(tag, grid, global_step=pl_module.global_step)


class Throughput(L.Callback):
    """Training images per second (smoothed), shown in the progress bar and logged."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing, self.rate, self.t0 = smoothing, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = batch[0].shape[0] if isinstance(batch, (tuple, list)) else batch.shape[0]
        rate = n * trainer.world_size / max(time.perf_counter() - self.t0, 1e-9)
        self.rate = rate if self.rate is None else self.smoothing * self.rate + (1 - self.smoothing) * rate
        pl_module.log("img_per_s", self.rate, prog_bar=True, on_step=True, on_epoch=False, rank_zero_only=True)


class RNGState(L.Callback):
    """Saves the Python, NumPy and torch RNG states in every checkpoint and restores them on resume,
    so a resumed run draws the same noise as an uninterrupted one."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain Python values only, so checkpoints stay loadable with torch.load(weights_only=True)
        state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
                 "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_states"] = state

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_states")
        if not state:
            return
        random.setstate(state["python"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class RunLifecycle(L.Callback):
    """Keeps status.json true, and on Ctrl-C or SIGTERM saves last.ckpt so `--resume` can continue.
    On any other error (a NaN loss included) the last good checkpoint is left untouched."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.run.set_status("running", epoch=trainer.current_epoch, message="")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.run.set_status("running", epoch=trainer.current_epoch + 1)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            try:
                trainer.save_checkpoint(self.run.last_checkpoint)
                message = (f"saved {self.run.last_checkpoint}; continue with: genlab train --resume {self.run.path}")
            except GenlabError as exc:  # e.g. a full disk: the previous last.ckpt is still there
                message = f"{exc}; continue with: genlab train --resume {self.run.path}"
            if trainer.is_global_zero:
                self._status("interrupted", message)
        elif trainer.is_global_zero:
            self._status("failed", f"{type(exception).__name__}: {exception}")

    def _status(self, status: str, message: str) -> None:
        # never let a second failure (status.json on a full disk) hide the first one
        with contextlib.suppress(GenlabError):
            self.run.set_status(status, message=message)


class OptimizerSettings(L.Callback):
    """Applies the config's optimizer settings to the optimisers restored from a checkpoint, which
    would otherwise keep the checkpoint's lr: a resumed run does what its config.yaml says."""

    def __init__(self, settings: OptimizerConfig) -> None:
        self.settings = settings

    def on_train_start(self, trainer, pl_module) -> None:
        s = self.settings
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.update(lr=s.lr, weight_decay=s.weight_decay)
                if "betas" in group:
                    group["betas"] = tuple(s.betas)
