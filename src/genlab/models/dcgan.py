"""DCGAN (Radford et al., 2016) networks and the two GAN losses the study uses.

Contract:
- `DCGANGenerator(z)`: (N, latent_dim) noise -> (N, C, S, S) images in [-1, 1] (tanh).
- `DCGANDiscriminator(x)`: images in [-1, 1] -> (N,) logits (no sigmoid: the BCE loss takes
  logits, and LSGAN uses them raw).
- `GAN`: the base of DCGAN and BiGAN: `generator`, an optional EMA copy of it
  (`ema_generator`, what samples come from when present), and the image-model contract of
  `genlab.models.contract` (`noise`, `sample` -> images in [0, 1], `generate`).
- `DCGAN`: generator + discriminator.
- `discriminator_loss(real, fake, kind)` and `generator_loss(fake, kind)` with kind "bce"
  (DCGAN, non-saturating generator loss) or "ls" (LSGAN, a=0, b=c=1 of Mao et al.).

The image side S must be a power of two >= 8; each transposed conv doubles the side from 4x4,
with channels halving down to `width` (so 64x64 gives the paper's 8w-4w-2w-w generator).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.contract import Generative, gaussian_noise, to_unit

INIT_STD = 0.02


def _levels(image_size: int) -> int:
    n = int(round(math.log2(image_size))) - 2  # 4x4 -> image_size in n doublings
    if image_size < 8 or 2 ** (n + 2) != image_size:
        raise ValueError(f"DCGAN needs a power-of-two image size >= 8, got {image_size}")
    return n


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z -> 4x4 (transposed conv) -> doublings with BatchNorm + ReLU -> tanh image."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64, width: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        n = _levels(image_size)
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 512, 256, 128, 64
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    @property
    def first_layer(self) -> nn.ConvTranspose2d:
        """The layer the latent traversals' principal directions come from."""
        layer = self.main[0]
        assert isinstance(layer, nn.ConvTranspose2d)
        return layer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.latent_dim, 1, 1))


def conv_features(channels: int, image_size: int, width: int, norm_first: bool = False,
                  act: type[nn.Module] = nn.LeakyReLU, batch_norm: bool = True) -> tuple[nn.Sequential, int]:
    """Strided 4x4 convs halving the side down to 4x4, BatchNorm after all but the first
    (the DCGAN rule; none at all with `batch_norm=False`). Returns the stack and its output channels."""
    n = _levels(image_size)
    widths = [width * 2 ** i for i in range(n)]  # e.g. 64, 128, 256, 512
    make_act = (lambda: nn.LeakyReLU(0.2, inplace=True)) if act is nn.LeakyReLU else (lambda: act(inplace=True))
    layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False)]
    layers += [nn.BatchNorm2d(widths[0])] if norm_first else []
    layers += [make_act()]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), *([nn.BatchNorm2d(c_out)] if batch_norm else []),
                   make_act()]
    return nn.Sequential(*layers), widths[-1]


class DCGANDiscriminator(nn.Module):
    """Conv stack with BatchNorm and LeakyReLU(0.2) down to 4x4, then a 4x4 conv to one logit.

    `batch_norm=False` drops the BatchNorm layers: each image's score then depends on that image
    alone. The least-squares loss needs it (LSGAN on Bitmoji draws noise with them; benchmarks/
    RESULTS.md, "Why the study's LSGAN drew noise")."""

    def __init__(self, channels: int = 3, image_size: int = 64, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        self.features, c = conv_features(channels, image_size, width, batch_norm=batch_norm)
        self.head = nn.Conv2d(c, 1, 4, 1, 0, bias=False)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)


class GAN(Generative):
    """A DCGAN generator and, with `ema=True`, an exponential moving average of it (weights and
    BatchNorm statistics; the trainer updates it) that samples come from."""

    generator: DCGANGenerator
    ema_generator: DCGANGenerator | None

    def __init__(self, latent_dim: int, channels: int, image_size: int, g_width: int, ema: bool = False) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = DCGANGenerator(latent_dim, channels, image_size, g_width)
        self.register_module("ema_generator", copy.deepcopy(self.generator).requires_grad_(False) if ema else None)

    @property
    def sampling_generator(self) -> DCGANGenerator:
        """The generator behind `sample`: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return gaussian_noise(self, n, self.latent_dim, generator)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (the generator works in [-1, 1])."""
        return to_unit(self.sampling_generator(noise))


class DCGAN(GAN):
    """Generator + discriminator of DCGAN (and of LSGAN: same networks, another loss)."""

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64,
                 g_width: int = 64, d_width: int = 64, ema: bool = False, d_batch_norm: bool = True) -> None:
        super().__init__(latent_dim, channels, image_size, g_width, ema)
        self.discriminator = DCGANDiscriminator(channels, image_size, d_width, batch_norm=d_batch_norm)


# --- losses -------------------------------------------------------------------------------------
def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """real/fake: discriminator outputs (logits). BCE: -log D(x) - log(1 - D(G(z))), summed over
    the two halves like pytorch/examples; LS: 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2."""
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "ls":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def generator_loss(fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Non-saturating -log D(G(z)) for BCE; 1/2 (D(G(z)) - 1)^2 for LS."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "ls":
        return 0.5 * ((fake - 1) ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r}")
