"""BiGAN (Donahue et al., 2017): the DCGAN generator, an encoder E(x) -> z, and a joint
discriminator D(x, z) that tells (x, E(x)) pairs from (G(z), z) pairs.

Contract:
- `BiGANEncoder(x)`: images in [-1, 1] -> (N, latent_dim) codes (conv stack + BatchNorm + ReLU).
- `JointDiscriminator(x, z)`: -> (N,) logits.
- `BiGAN`: `generator`, `encoder`, `discriminator`, and the image-model contract with an encoder:
  `noise`, `sample`, `encode(x)`, `reconstruct(x)`, all in [0, 1] at the edges. Reconstructions
  use the trained generator (the one E learned to invert), samples the EMA one when present.
- `generator_encoder_loss(d_real, d_fake)`: the (non-saturating) loss of the generator + encoder,
  where d_real = D(x, E(x)) and d_fake = D(G(z), z); D itself uses the DCGAN BCE loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import from_unit, to_unit
from genlab.models.dcgan import GAN, conv_features, init_weights


class BiGANEncoder(nn.Module):
    """The discriminator's conv stack with ReLU (BatchNorm on every layer), then a 4x4 conv to z."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.features, c = conv_features(channels, image_size, width, norm_first=True, act=nn.ReLU)
        self.head = nn.Conv2d(c, latent_dim, 4, 1, 0)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(1)


class JointDiscriminator(nn.Module):
    """x through the DCGAN conv stack, z through a linear layer, then an MLP on both."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64, width: int = 64,
                 hidden: int = 1024) -> None:
        super().__init__()
        self.x_path, c = conv_features(channels, image_size, width)
        self.z_path = nn.Sequential(nn.Linear(latent_dim, hidden // 2), nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(nn.Linear(c * 16 + hidden // 2, hidden), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Linear(hidden, 1))
        init_weights(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.x_path(x).flatten(1), self.z_path(z)], dim=1)
        return self.joint(h).view(-1)


class BiGAN(GAN):
    has_encoder = True

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64,
                 g_width: int = 64, d_width: int = 64, ema: bool = False) -> None:
        super().__init__(latent_dim, channels, image_size, g_width, ema)
        self.encoder = BiGANEncoder(latent_dim, channels, image_size, d_width)
        self.discriminator = JointDiscriminator(latent_dim, channels, image_size, d_width)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) for images in [0, 1]."""
        return self.encoder(from_unit(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)) in [0, 1], for images in [0, 1]."""
        return to_unit(self.generator(self.encoder(from_unit(x))))


def generator_encoder_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The loss of G and E given D(x, E(x)) and D(G(z), z) logits: the discriminator's BCE with the
    labels swapped (non-saturating), -log(1 - D(x, E(x))) - log D(G(z), z). The discriminator's own
    loss is `genlab.models.dcgan.discriminator_loss(d_real, d_fake, "bce")`."""
    return (F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
            + F.binary_cross_entropy_with_logits(d_real, torch.zeros_like(d_real)))
