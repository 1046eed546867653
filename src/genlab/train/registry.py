"""model.name -> the LightningModule that trains it."""

from __future__ import annotations

from genlab.config import ExperimentConfig
from genlab.train.base import GenlabModule


def module_class(name: str) -> type[GenlabModule]:
    if name == "vae":
        from genlab.train.vae_module import VAEModule

        return VAEModule
    raise KeyError(name)  # unreachable: the config schema only admits known names


def build_module(cfg: ExperimentConfig) -> GenlabModule:
    return module_class(cfg.model.name)(cfg)
