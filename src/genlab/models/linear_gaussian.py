"""A linear-Gaussian VAE whose marginal likelihood is known in closed form.

p(z) = N(0, I_d),  p(x|z) = N(W z + b, sigma^2 I_D),  so  x ~ N(b, W W^T + sigma^2 I_D).

It obeys the latent-variable contract of `genlab.models.vae` (images are (B, 1, 1, D); flat
(B, D) inputs are accepted too), so every likelihood estimator can be checked against
`exact_log_marginal`. The encoder is deliberately *not* the exact posterior: the exact posterior
is a full-covariance Gaussian, the encoder is diagonal, its mean is shifted by `encoder_shift`
marginal standard deviations and its variances are inflated by `encoder_inflation`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.models.distributions import gaussian_log_likelihood, log_standard_normal


class LinearGaussianVAE(nn.Module):
    likelihood = "gaussian"
    W: torch.Tensor  # buffers, registered in __init__
    b: torch.Tensor
    shift: torch.Tensor

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        sigma: float = 0.5,
        *,
        encoder_shift: float = 0.5,
        encoder_inflation: float = 1.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if encoder_inflation <= 0 or sigma <= 0:
            raise ValueError("sigma and encoder_inflation must be positive")
        self.data_dim, self.latent_dim, self.sigma = data_dim, latent_dim, float(sigma)
        self.in_channels, self.image_size = 1, None  # images are (1, 1, D), not square
        g = torch.Generator().manual_seed(seed)
        # Columns scaled by 1/sqrt(d): each x coordinate has O(1) signal variance at any d.
        self.register_buffer("W", torch.randn(data_dim, latent_dim, generator=g) / math.sqrt(latent_dim))
        self.register_buffer("b", 0.5 * torch.randn(data_dim, generator=g))
        # A fixed random sign per latent coordinate: the direction of the encoder's mean error.
        signs = torch.randint(0, 2, (latent_dim,), generator=g).float() * 2 - 1
        self.register_buffer("shift", encoder_shift * signs)
        self.encoder_inflation = float(encoder_inflation)

    # --- closed forms ----------------------------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.data_dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z|x) = N(mean (B, d), cov (d, d)), computed in float64."""
        W, b = self.W.double(), self.b.double()
        precision = torch.eye(self.latent_dim, dtype=torch.float64, device=W.device) + W.T @ W / self.sigma**2
        cov = torch.linalg.inv(precision)
        mean = (self._flat(x).double() - b) @ W @ cov / self.sigma**2
        return mean, cov

    def exact_log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats per image (float64), from x ~ N(b, W W^T + sigma^2 I)."""
        W, b = self.W.double(), self.b.double()
        cov = W @ W.T + self.sigma**2 * torch.eye(self.data_dim, dtype=torch.float64, device=W.device)
        return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(self._flat(x).double())

    # --- the contract ----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, cov = self.posterior(x)
        std = cov.diagonal().sqrt()
        enc_mean = mean + self.shift.double() * std
        logvar = torch.log(cov.diagonal() * self.encoder_inflation).expand_as(enc_mean)
        return enc_mean.to(self.W.dtype), logvar.to(self.W.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.W.T + self.b).unsqueeze(-2).unsqueeze(-2)  # (..., 1, 1, D)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return log_standard_normal(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, 1, self.data_dim)
        return gaussian_log_likelihood(x, self.decode(z), self.sigma)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.W.device)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Mean images of p(x|z) at z = `noise`, like ConvVAE.sample."""
        return self.decode(noise)
