"""What every genlab LightningModule shares: the checkpoint stamp, the NaN guard and the batch
convention. Sampling and reconstruction belong to the plain model (`self.net`, see
`genlab.models.contract`); a LightningModule only trains it."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from genlab.checkpoints import CHECKPOINT_FORMAT, checkpoint_stamp, upgrade_state_dict
from genlab.config import ExperimentConfig
from genlab.errors import GenlabError

__all__ = ["CHECKPOINT_FORMAT", "GenlabModule", "NonFiniteLossError", "images_of"]


class NonFiniteLossError(GenlabError):
    pass


def images_of(batch: Any) -> torch.Tensor:
    """Datasets yield `(image, target)`; models only need the images."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class GenlabModule(L.LightningModule):
    """Base class: holds the experiment config and the plain nn.Module it trains (`self.net`)."""

    net: torch.nn.Module
    CURVE_PANELS: dict[str, list[str]] = {"loss": ["train/loss_step", "train/loss_epoch", "val/loss"]}

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # the config goes into every checkpoint, so a checkpoint can be loaded and checked alone
        self.save_hyperparameters({"config": cfg.to_dict()})

    def check_finite(self, loss: torch.Tensor, what: str = "loss") -> None:
        """Stop before the optimiser step, so the weights (and the last checkpoint) stay good."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{what} became {value} at epoch {self.current_epoch}, step {self.global_step}; training "
                "stopped and the last good checkpoint was kept. Try a lower optimizer.lr or check the data."
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["genlab"] = checkpoint_stamp(self.cfg.model.name)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before loading the weights: a format-1 checkpoint resumes too
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"])
