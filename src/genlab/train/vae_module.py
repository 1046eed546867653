"""Training the VAE: Adam, the beta-weighted loss, the true ELBO logged in nats."""

from __future__ import annotations

import torch

from genlab.config import ExperimentConfig
from genlab.models.registry import build_model
from genlab.models.vae import ConvVAE
from genlab.train.base import GenlabModule, images_of


class VAEModule(GenlabModule):
    CURVE_PANELS = {
        "ELBO (nats, higher is better)": ["train/elbo_step", "train/elbo_epoch", "val/elbo"],
        "reconstruction log p(x|z)": ["train/log_likelihood_step", "train/log_likelihood_epoch",
                                      "val/log_likelihood"],
        "KL(q(z|x) || p(z)) (nats)": ["train/kl_step", "train/kl_epoch", "val/kl"],
    }

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.net: ConvVAE = build_model(cfg)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x = images_of(batch)
        out = self.net.elbo(x, beta=self.cfg.model.beta)
        if stage == "train":
            self.check_finite(out["loss"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, on_step=on_step, on_epoch=True, sync_dist=True,
                 batch_size=x.shape[0])
        for key in ("elbo", "log_likelihood", "kl"):
            self.log(f"{stage}/{key}", out[key].mean(), on_step=on_step, on_epoch=True, sync_dist=True,
                     batch_size=x.shape[0], prog_bar=(stage == "val" and key == "elbo"))
        return out["loss"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        o = self.cfg.optimizer
        return torch.optim.Adam(self.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
