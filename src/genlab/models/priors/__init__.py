"""Priors over VQ-VAE code maps: the study's Gaussian mixture and small VAE, and a gated PixelCNN.

Every prior keeps one protocol (`CodePrior`), so evaluation never asks which kind it holds:

    grid                                      (H, W) of the code maps it models
    log_prob_kind                             "exact", "bound" (a lower bound on log p) or None
    sample(n, generator=None, temperature=1)  (N, H, W) int64 code maps
    log_prob(indices, generator=None)         (N,) nats per map, or None where the prior defines none
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Protocol, runtime_checkable

import torch

from genlab.defaults import PRIOR_KINDS

__all__ = ["PRIOR_KINDS", "CodePrior", "bits_per_map", "sample_maps"]


@runtime_checkable
class CodePrior(Protocol):
    grid: tuple[int, int]
    log_prob_kind: Optional[str]

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor: ...

    def log_prob(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor | None: ...


@torch.no_grad()
def sample_maps(prior: CodePrior, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
                batch_size: int = 100, advance: Callable[[int], None] | None = None) -> torch.Tensor:
    """`n` code maps, `batch_size` at a time (the neural priors' memory grows with the batch);
    `advance(k)` is called after each batch (a progress bar)."""
    out = []
    for i in range(0, n, batch_size):
        out.append(prior.sample(min(batch_size, n - i), generator=generator, temperature=temperature))
        if advance is not None:
            advance(len(out[-1]))
    return torch.cat(out)


@torch.no_grad()
def bits_per_map(prior: CodePrior, indices: torch.Tensor, generator: torch.Generator | None = None,
                 batch_size: int = 100) -> torch.Tensor | None:
    """-log2 p(map) per map (an upper bound where `log_prob_kind` is "bound"), or None."""
    if prior.log_prob_kind is None:
        return None
    nats = [prior.log_prob(indices[i:i + batch_size], generator=generator) for i in range(0, len(indices), batch_size)]
    return -torch.cat([t for t in nats if t is not None]) / math.log(2)
