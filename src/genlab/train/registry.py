"""model.name -> the LightningModule that trains it."""

from __future__ import annotations

from genlab.config import ExperimentConfig
from genlab.train.base import GenlabModule


def module_class(name: str) -> type[GenlabModule]:
    if name == "vae":
        from genlab.train.vae_module import VAEModule

        return VAEModule
    if name in ("dcgan", "lsgan", "bigan"):
        from genlab.train.gan_module import GANModule

        return GANModule
    if name == "vqvae":
        from genlab.train.vqvae_module import VQVAEModule

        return VQVAEModule
    raise KeyError(name)  # unreachable: the config schema only admits known names


def build_module(cfg: ExperimentConfig) -> GenlabModule:
    return module_class(cfg.model.name)(cfg)
