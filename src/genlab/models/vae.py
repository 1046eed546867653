"""The study's convolutional VAE as a plain nn.Module.

Contract (shared with every latent-variable model the likelihood estimators accept):
  - `latent_dim`                      size of z
  - `encode(x) -> (mean, logvar)`     the diagonal-Gaussian posterior q(z|x)
  - `decode(z) -> x_mean`             the mean of p(x|z), in [0, 1]
  - `log_prior(z)`                    log p(z) = log N(z; 0, I)
  - `log_likelihood(x, z)`            log p(x|z) in nats; z may carry leading sample dims (S, B, d)
  - `elbo(x, beta)`                   dict with the true ELBO (beta only changes `loss`)
  - `noise(n, generator)`, `sample(noise)`, `generate(n, seed)`, `reconstruct(x)`: the image-model
    contract of `genlab.models.contract`, in [0, 1]
  - `likelihood`                      "gaussian" (fixed sigma; the study's MSE) or "bernoulli"
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from genlab.models.contract import LatentVariableModel
from genlab.models.distributions import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    kl_diag_to_standard,
    log_standard_normal,
)

LIKELIHOODS = ("gaussian", "bernoulli")


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 tensors (autocast's outputs) in float32; float32 and float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Float32Sigmoid(nn.Sigmoid):
    """The output sigmoid in float32 (at least): under bf16 autocast every probability above ~0.998
    would round to 1 (a NaN Bernoulli likelihood, no gradient). No weights: checkpoints are unchanged."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(at_least_float32(input))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2))


def _deconv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(0.2)
    )


class ConvVAE(LatentVariableModel):
    """Encoder: len(channels) stride-2 3x3 convs with LeakyReLU, flatten, linear mean/log-variance heads.
    Decoder: linear, the mirror stack of stride-2 transposed convs, a 3x3 conv to the image, sigmoid."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 64,
        latent_dim: int = 128,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        likelihood: str = "gaussian",
        sigma: float = 1.0,
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        factor = 2 ** len(channels)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by 2^{len(channels)} = {factor}")
        self.in_channels, self.image_size, self.latent_dim = in_channels, image_size, latent_dim
        self.likelihood, self.sigma = likelihood, float(sigma)
        self._grid = image_size // factor
        self._top = channels[-1]
        flat = self._top * self._grid**2

        widths = [in_channels, *channels]
        self.encoder = nn.Sequential(*[_conv_block(a, b) for a, b in zip(widths[:-1], widths[1:])], nn.Flatten())
        self.fc_mean = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)

        rev = list(channels[::-1]) + [channels[0]]
        self.fc_decode = nn.Linear(latent_dim, flat)
        self.decoder = nn.Sequential(
            *[_deconv_block(a, b) for a, b in zip(rev[:-1], rev[1:])],
            nn.Conv2d(channels[0], in_channels, 3, padding=1),
            Float32Sigmoid(),
        )

    # --- the contract -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mean(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.fc_decode(z.reshape(-1, self.latent_dim)).view(-1, self._top, self._grid, self._grid)
        return self.decoder(h).view(*lead, self.in_channels, self.image_size, self.image_size)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return log_standard_normal(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.log_likelihood_from_mean(x, self.decode(z))

    def log_likelihood_from_mean(self, x: torch.Tensor, x_mean: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "gaussian":
            return gaussian_log_likelihood(x, x_mean, self.sigma)
        return bernoulli_log_likelihood(x, x_mean)

    def elbo(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """One-sample ELBO per image. `elbo`, `log_likelihood` and `kl` are true values in nats;
        only `loss` (the batch mean of -(log p(x|z) - beta KL)) depends on beta."""
        mean, logvar = (at_least_float32(t) for t in self.encode(x))  # float32 KL under bf16 autocast
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        x_mean = self.decode(z)
        rec = self.log_likelihood_from_mean(x, x_mean)
        kl = kl_diag_to_standard(mean, logvar)
        return {
            "elbo": rec - kl,
            "log_likelihood": rec,
            "kl": kl,
            "loss": -(rec - beta * kl).mean(),
            "reconstruction": x_mean,
        }

