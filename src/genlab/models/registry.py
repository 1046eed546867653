"""model.name -> the plain nn.Module it builds; prior kind -> the prior over code maps.

Adding a model: write its nn.Module (keeping `genlab.models.contract`), its config class
(`genlab.config.register_model_config`), its LightningModule (`genlab.train.registry.register_module`)
and one `register_model` line here (or in your own package, before building a config).

The metric that picks a run's best checkpoint is registered here with the model, not on its
LightningModule, so the trainer and the trainer-free readers (`genlab runs`, the report) share it
without the readers importing Lightning.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from genlab.config import (
    BetaTCVAEConfig,
    BetaVAEConfig,
    ExperimentConfig,
    FactorVAEConfig,
    GANConfig,
    VAEConfig,
    VQVAEConfig,
)
from genlab.models.bigan import BiGAN
from genlab.models.dcgan import DCGAN
from genlab.models.disentangle import BetaTCVAE, BetaVAE, FactorVAE
from genlab.models.priors.code_vae import CodeVAE
from genlab.models.priors.pixelcnn import GatedPixelCNN
from genlab.models.vae import ConvVAE
from genlab.models.vqvae import VQVAE

ModelBuilder = Callable[[ExperimentConfig], nn.Module]
MODELS: dict[str, ModelBuilder] = {}
# model.name -> (metric, "min" | "max"): what picks best.ckpt, and the headline of `genlab runs`
MONITORS: dict[str, tuple[str, str]] = {}
DEFAULT_MONITOR = ("val/loss", "min")


def register_model(name: str, builder: ModelBuilder, monitor: tuple[str, str] = DEFAULT_MONITOR) -> None:
    """Make `build_model` build `builder(cfg)` for configs whose `model.name` is `name`; `monitor`
    (metric, direction) picks the run's best checkpoint."""
    MODELS[name] = builder
    MONITORS[name] = monitor


def monitor_of(model_name: str) -> tuple[str, str]:
    """The metric that picks a model's best checkpoint, and its direction (`val/loss`, min, if unknown)."""
    return MONITORS.get(model_name, DEFAULT_MONITOR)


def build_model(cfg: ExperimentConfig) -> nn.Module:
    """The untrained nn.Module that `cfg` describes."""
    try:
        builder = MODELS[cfg.model.name]
    except KeyError:
        raise KeyError(f"no model registered as {cfg.model.name!r} (registered: {', '.join(sorted(MODELS))})") from None
    return builder(cfg)


def build_vae(cfg: ExperimentConfig) -> ConvVAE:
    m, d = cfg.model, cfg.data
    assert isinstance(m, VAEConfig)
    return ConvVAE(in_channels=d.channels, image_size=d.image_size, latent_dim=m.latent_dim,
                   channels=m.channels, likelihood=m.likelihood, sigma=m.sigma)


def build_gan(cfg: ExperimentConfig) -> DCGAN | BiGAN:
    m, d = cfg.model, cfg.data
    assert isinstance(m, GANConfig)
    if m.name == "bigan":
        return BiGAN(latent_dim=m.latent_dim, channels=d.channels, image_size=d.image_size,
                     g_width=m.g_width, d_width=m.d_width, ema=m.ema is not None)
    return DCGAN(latent_dim=m.latent_dim, channels=d.channels, image_size=d.image_size, g_width=m.g_width,
                 d_width=m.d_width, ema=m.ema is not None, d_batch_norm=m.d_batch_norm)


def build_vqvae(cfg: ExperimentConfig) -> VQVAE:
    m = cfg.model
    assert isinstance(m, VQVAEConfig)
    return VQVAE(in_channels=cfg.data.channels, hidden=m.hidden, res_hidden=m.res_hidden, res_blocks=m.res_blocks,
                 code_dim=m.code_dim, num_codes=m.num_codes, beta=m.beta, codebook=m.codebook, decay=m.decay,
                 init=m.init, restart_threshold=m.restart_threshold, seed=cfg.trainer.seed,
                 image_size=cfg.data.image_size)


def build_disentangling_vae(cfg: ExperimentConfig) -> BetaVAE | BetaTCVAE | FactorVAE:
    m, d = cfg.model, cfg.data
    assert isinstance(m, (BetaVAEConfig, BetaTCVAEConfig, FactorVAEConfig))
    shape = dict(in_channels=d.channels, image_size=d.image_size, latent_dim=m.latent_dim)
    if isinstance(m, BetaVAEConfig):
        return BetaVAE(**shape, beta=m.beta)
    if isinstance(m, BetaTCVAEConfig):
        return BetaTCVAE(**shape, alpha=m.alpha, beta=m.beta, gamma=m.gamma)
    return FactorVAE(**shape, gamma=m.gamma, disc_hidden=m.disc_hidden, disc_layers=m.disc_layers)


register_model("vae", build_vae, monitor=("val/elbo", "max"))
register_model("dcgan", build_gan, monitor=("fid", "min"))
register_model("lsgan", build_gan, monitor=("fid", "min"))
register_model("bigan", build_gan, monitor=("fid", "min"))
register_model("vqvae", build_vqvae, monitor=("val/psnr", "max"))
for _name in ("betavae", "btcvae", "factorvae"):
    register_model(_name, build_disentangling_vae, monitor=("val/loss", "min"))  # the objective it trains on


def build_neural_prior(kind: str, cfg: ExperimentConfig, grid: tuple[int, int]) -> nn.Module:
    """The untrained neural prior `kind` ("vae" or "pixelcnn") over `grid` code maps of a VQ-VAE run."""
    assert isinstance(cfg.model, VQVAEConfig)
    p, k = cfg.model.priors, cfg.model.num_codes
    if kind == "vae":
        return CodeVAE(k, grid, latent_dim=p.vae.latent_dim, hidden=p.vae.hidden, embed_dim=p.vae.embed_dim)
    if kind == "pixelcnn":
        return GatedPixelCNN(k, hidden=p.pixelcnn.hidden, layers=p.pixelcnn.layers, grid=grid)
    raise ValueError(f"{kind!r} is not a neural prior")
