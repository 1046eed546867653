"""Log-densities used by the models and the likelihood estimators, summed over event dims."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def log_normal_diag(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * ((z - mean).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def kl_diag_to_standard(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag(exp(logvar))) || N(0, I)) in closed form, summed over the last dimension."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; mean, sigma^2 I) summed over all but the leading batch dims (C, H, W)."""
    d = mean.shape[-3:].numel()
    sq = (x - mean).pow(2).flatten(-3).sum(-1)
    return -0.5 * sq / sigma**2 - d * (math.log(sigma) + 0.5 * LOG_2PI)


def bernoulli_log_likelihood(x: torch.Tensor, probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log Bernoulli(x; probs) summed over (C, H, W); x may be fractional (then it is a cross-entropy)."""
    probs = probs.clamp(eps, 1 - eps)
    # written out rather than F.binary_cross_entropy, which raises on NaN probabilities: a diverged
    # model must reach the training NaN guard as a NaN loss
    x = x.expand_as(probs)
    return (x * probs.log() + (1 - x) * (1 - probs).log()).flatten(-3).sum(-1)
