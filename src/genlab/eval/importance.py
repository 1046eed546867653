"""Importance sampling (the IWAE bound) with the encoder q(z|x) as proposal.

log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x).  Its expectation is a lower bound
that tightens as K grows; the ELBO is the K = 1 case, averaged over the same samples.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.eval.estimate import (
    Estimate,
    check_images,
    check_positive,
    eval_mode,
    log_mean_exp_se,
    make_generator,
    over_image_groups,
)
from genlab.models.distributions import log_normal_diag


@torch.no_grad()
def log_importance_weights(model: nn.Module, x: torch.Tensor, n_samples: int, batch_size: int,
                           generator: torch.Generator) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k|x) for K samples per image, (K, B); K is drawn in chunks so that
    one decoder call sees at most `batch_size` (sample, image) pairs."""
    mean, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    chunk = max(1, batch_size // x.shape[0])
    out = []
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        eps = torch.randn((k, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + std * eps
        out.append(model.log_prior(z) + model.log_likelihood(x, z) - log_normal_diag(z, mean, logvar))
    return torch.cat(out)


def importance_sampling(model: nn.Module, x: torch.Tensor, n_samples: int = 5000, *,
                        batch_size: int = 256, seed: int = 0) -> Estimate:
    """Per-image IS estimate of log p(x) (nats) with its delta-method standard error; the ELBO
    (mean log weight) and its standard error ride along in `extras`."""
    check_images(x)
    check_positive(n_samples=n_samples, batch_size=batch_size)
    g = make_generator(x, seed)

    def run(xb: torch.Tensor) -> dict[str, torch.Tensor]:
        log_w = log_importance_weights(model, xb, n_samples, batch_size, g).double()
        log_px, se = log_mean_exp_se(log_w, 0)
        elbo_se = log_w.std(0) / math.sqrt(n_samples) if n_samples > 1 else torch.full_like(log_px, math.nan)
        return {"log_px": log_px, "se": se, "elbo": log_w.mean(0), "elbo_se": elbo_se}

    with eval_mode(model):
        out, seconds = over_image_groups(x, batch_size, run)
    return Estimate(
        estimator="is", log_px=out["log_px"], se=out["se"], n_samples=n_samples, seconds_per_image=seconds,
        extras={"elbo": out["elbo"], "elbo_se": out["elbo_se"]},
        settings={"proposal": "encoder q(z|x)", "batch_size": batch_size, "seed": seed},
    )
