"""model.name -> the LightningModule that trains it (the plain model comes from
`genlab.models.registry.build_model`). Adding a model here is one `register_module` line."""

from __future__ import annotations

import importlib

from genlab.config import ExperimentConfig
from genlab.train.base import GenlabModule
from genlab.train.speed import resolve_channels_last

# "module:Class", imported on first use so `genlab train vae` never imports the GAN code
MODULES: dict[str, str | type[GenlabModule]] = {}


def register_module(name: str, module: str | type[GenlabModule]) -> None:
    """Train `model.name == name` with `module` (a GenlabModule class, or "package.module:Class")."""
    MODULES[name] = module


register_module("vae", "genlab.train.vae_module:VAEModule")
register_module("dcgan", "genlab.train.gan_module:GANModule")
register_module("lsgan", "genlab.train.gan_module:GANModule")
register_module("bigan", "genlab.train.gan_module:GANModule")
register_module("vqvae", "genlab.train.vqvae_module:VQVAEModule")
register_module("betavae", "genlab.train.disentangle_module:DisentangleModule")
register_module("btcvae", "genlab.train.disentangle_module:DisentangleModule")
register_module("factorvae", "genlab.train.disentangle_module:FactorVAEModule")


def module_class(name: str) -> type[GenlabModule]:
    try:
        entry = MODULES[name]
    except KeyError:
        raise KeyError(f"no training module registered for {name!r} (registered: {', '.join(sorted(MODULES))})") from None
    if isinstance(entry, str):
        path, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(path), cls)
        MODULES[name] = entry
    return entry


def build_module(cfg: ExperimentConfig) -> GenlabModule:
    """The LightningModule for `cfg`; `trainer.channels_last` (auto: genlab.train.speed) puts the model's
    weights in NHWC layout and `trainer.compile` torch.compiles its sub-networks (genlab.train.device_data)."""
    module = module_class(cfg.model.name)(cfg)
    channels_last = resolve_channels_last(cfg.trainer.channels_last, cfg.trainer.accelerator)
    if channels_last or cfg.trainer.compile:
        from genlab.train.device_data import apply_channels_last, compile_net

        if channels_last:
            apply_channels_last(module.net)
        if cfg.trainer.compile:
            compile_net(module.net, cfg.trainer.accelerator)
    return module
