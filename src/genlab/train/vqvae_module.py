"""Training the VQ-VAE: Adam on MSE + the quantiser's loss; per epoch MSE, PSNR, perplexity and the
fraction of codes in use; the compression ratio goes into the run (eval/compression.json)."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.config import ExperimentConfig
from genlab.io import atomic_write_json
from genlab.models.registry import build_model
from genlab.models.vqvae import VQVAE, compression, perplexity_of, psnr
from genlab.train.base import GenlabModule, images_of


def code_grid(cfg: ExperimentConfig) -> tuple[int, int]:
    return cfg.data.image_size // 2, cfg.data.image_size // 2


def run_compression(cfg: ExperimentConfig) -> dict[str, float]:
    d = cfg.data
    return compression(cfg.model.num_codes, (d.channels, d.image_size, d.image_size), code_grid(cfg))


class VQVAEModule(GenlabModule):
    CURVE_PANELS = {
        "loss (MSE + VQ)": ["train/loss_step", "train/loss_epoch", "val/loss"],
        "PSNR (dB, held-out)": ["train/psnr_epoch", "val/psnr"],
        "codebook perplexity": ["train/perplexity_epoch", "val/perplexity"],
        "fraction of codes in use": ["train/usage", "val/usage"],
    }

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.net: VQVAE = build_model(cfg)
        k = cfg.model.num_codes
        # per-epoch code histograms (not saved: they are rebuilt every epoch)
        self.register_buffer("_train_counts", torch.zeros(k, dtype=torch.long), persistent=False)
        self.register_buffer("_val_counts", torch.zeros(k, dtype=torch.long), persistent=False)

    def on_fit_start(self) -> None:
        if self.trainer.is_global_zero and self.trainer.log_dir:
            info = {"num_codes": self.cfg.model.num_codes, "code_grid": list(code_grid(self.cfg)),
                    **run_compression(self.cfg)}
            atomic_write_json(Path(self.trainer.log_dir) / "eval" / "compression.json", info)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x = images_of(batch)
        out = self.net(x)
        if stage == "train":
            self.check_finite(out["loss"])
        counts = self._train_counts if stage == "train" else self._val_counts
        counts += out["counts"]
        on_step, n = stage == "train", x.shape[0]
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, on_step=on_step, on_epoch=True, sync_dist=True,
                 batch_size=n)
        self.log(f"{stage}/mse", out["mse"], on_step=on_step, on_epoch=True, sync_dist=True, batch_size=n)
        self.log(f"{stage}/psnr", psnr(x, out["reconstruction"].detach()).mean(), on_step=on_step, on_epoch=True,
                 sync_dist=True, batch_size=n, prog_bar=stage == "val")
        self.log(f"{stage}/perplexity", out["perplexity"], on_step=on_step, on_epoch=True, sync_dist=True,
                 batch_size=n)
        return out["loss"]

    def _log_usage(self, stage: str) -> None:
        counts = self._train_counts if stage == "train" else self._val_counts
        total = self.all_gather(counts)
        total = total.sum(0) if total.dim() > 1 else total
        if total.sum() > 0:
            self.log(f"{stage}/usage", (total > 0).float().mean(), rank_zero_only=True)
            if stage == "val":  # the epoch histogram's perplexity (train's is the mean over batches)
                self.log("val/epoch_perplexity", perplexity_of(total), rank_zero_only=True)
            self.log(f"{stage}/restarts", self.net.quantizer.restarts.float(), rank_zero_only=True)
        counts.zero_()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def on_train_epoch_end(self) -> None:
        self._log_usage("train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_usage("val")

    def configure_optimizers(self):
        o = self.cfg.optimizer
        return torch.optim.Adam(self.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
