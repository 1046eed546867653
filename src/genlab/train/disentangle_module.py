"""Training the disentangling VAEs (genlab.models.disentangle): beta-VAE and beta-TCVAE with Adam on the
model's `objective`; FactorVAE with Lightning's manual optimisation, a VAE step then a discriminator
step (its own Adam, Kim & Mnih's lr 1e-4, betas (0.5, 0.9)) on every batch. The model's terms are logged
beside the loss; `elbo`, `log_likelihood` and `kl` are always the true (beta = 1) values.

FactorVAE: Lightning's `trainer.max_steps` counts the steps of both optimisers, so 2 per batch."""

from __future__ import annotations

from typing import Any

import torch

from genlab.config import BetaTCVAEConfig, ExperimentConfig, FactorVAEConfig
from genlab.errors import GenlabError
from genlab.models.registry import build_model
from genlab.train.base import GenlabModule, images_of
from genlab.train.gan_module import frozen

TRUE_TERMS = ("elbo", "log_likelihood", "kl")
EXTRA_TERMS = ("mi", "tc", "dimkl")  # the model-specific ones, logged where the model gives them


class DisentangleModule(GenlabModule):
    MONITOR = ("val/loss", "min")  # the objective the model trains on (its ELBO is a curve beside it)
    CURVE_PANELS = {
        "training loss": ["train/loss_step", "train/loss_epoch", "val/loss"],
        "ELBO (nats, higher is better)": ["train/elbo_step", "train/elbo_epoch", "val/elbo"],
        "KL(q(z|x) || p(z)) (nats)": ["train/kl_step", "train/kl_epoch", "val/kl"],
        "KL terms: index-code MI, total correlation, dimension-wise KL (nats)": [
            "train/mi_epoch", "train/tc_epoch", "train/dimkl_epoch", "val/mi", "val/tc", "val/dimkl"],
    }

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.net = build_model(cfg)
        self.dataset_size: int | None = None

    def setup(self, stage: str) -> None:
        """beta-TCVAE's estimator needs N: the config's, or the training split's size."""
        m = self.cfg.model
        if not isinstance(m, BetaTCVAEConfig):
            return
        n = m.dataset_size
        if n is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            train_set = getattr(datamodule, "train_set", None)
            if train_set is None:
                raise GenlabError("beta-TCVAE needs the dataset size: set model.dataset_size=N")
            n = len(train_set)
        if n < self.cfg.data.batch_size:
            raise GenlabError(f"model.dataset_size {n} is smaller than data.batch_size {self.cfg.data.batch_size}; "
                              "give the number of training images")
        self.dataset_size = n

    def objective(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(self.cfg.model, BetaTCVAEConfig):
            return self.net.objective(x, dataset_size=self.dataset_size)
        return self.net.objective(x)

    def log_terms(self, out: dict[str, torch.Tensor], stage: str, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, on_step=on_step, on_epoch=True, sync_dist=True,
                 batch_size=batch_size)
        for key in (*TRUE_TERMS, *EXTRA_TERMS):
            if key in out:
                self.log(f"{stage}/{key}", out[key].detach().mean(), on_step=on_step, on_epoch=True, sync_dist=True,
                         batch_size=batch_size, prog_bar=(stage == "val" and key == "elbo"))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = images_of(batch)
        out = self.objective(x)
        self.check_finite(out["loss"])
        self.log_terms(out, "train", x.shape[0])
        return out["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = images_of(batch)
        self.log_terms(self.objective(x), "val", x.shape[0])

    def configure_optimizers(self):
        o = self.cfg.optimizer
        return torch.optim.Adam(self.vae_parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def vae_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.encoder.parameters()) + list(self.net.decoder.parameters())


class FactorVAEModule(DisentangleModule):
    CURVE_PANELS = {
        **{k: v for k, v in DisentangleModule.CURVE_PANELS.items() if not k.startswith("KL terms")},
        "total correlation (discriminator estimate, nats)": ["train/tc_step", "train/tc_epoch", "val/tc"],
        "discriminator loss (ln 2 = chance)": ["train/d_loss_step", "train/d_loss_epoch"],
    }

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_vae, opt_d = self.optimizers()
        x = images_of(batch)
        with frozen(self.net.discriminator):  # the VAE step reads D but leaves its weights alone
            out = self.objective(x)
        self.check_finite(out["loss"])
        opt_vae.zero_grad(set_to_none=True)
        self.manual_backward(out["loss"])
        opt_vae.step()
        d_loss = self.net.discriminator_objective(out["z"])
        self.check_finite(d_loss, "discriminator loss")
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.log_terms(out, "train", x.shape[0])
        self.log("train/d_loss", d_loss.detach(), on_step=True, on_epoch=True, batch_size=x.shape[0])

    def on_train_start(self) -> None:
        # Lightning runs this after the callbacks' hook: OptimizerSettings has just put optimizer.* on every
        # restored optimiser, the discriminator's included; its own settings go back on here
        m = self.cfg.model
        assert isinstance(m, FactorVAEConfig)
        for group in self.optimizers()[1].param_groups:
            group.update(lr=m.disc_lr, betas=tuple(m.disc_betas), weight_decay=0.0)

    def configure_optimizers(self):
        o, m = self.cfg.optimizer, self.cfg.model
        assert isinstance(m, FactorVAEConfig)
        vae = torch.optim.Adam(self.vae_parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        disc = torch.optim.Adam(self.net.discriminator.parameters(), lr=m.disc_lr, betas=tuple(m.disc_betas))
        return [vae, disc]
