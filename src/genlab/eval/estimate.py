"""What every marginal-likelihood estimator returns, and the helpers they share."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError


@dataclass
class Estimate:
    """log p(x) per image in nats with a standard error, and how it was obtained."""

    estimator: str                      # "is", "appendix-d", "ais", "ais-reverse"
    log_px: np.ndarray                  # (B,) nats
    se: np.ndarray                      # (B,) nats
    n_samples: int                      # samples averaged per image
    seconds_per_image: float
    acceptance: np.ndarray | None = None  # (B,) mean HMC acceptance probability
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the ELBO next to IS
    settings: dict[str, Any] = field(default_factory=dict)


def log_mean_exp_se(log_w: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """log mean exp(log_w) along `dim` and its delta-method standard error
    se(log mean w) ~ std(w) / (sqrt(n) mean(w)); the ratio is scale-free, so w is shifted by its max."""
    n = log_w.shape[dim]
    lme = torch.logsumexp(log_w, dim) - math.log(n)
    w = torch.exp(log_w - log_w.amax(dim, keepdim=True))
    se = w.std(dim) / (math.sqrt(n) * w.mean(dim)) if n > 1 else torch.full_like(lme, math.nan)
    return lme, se


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise GenlabError(f"likelihood estimators need a non-empty batch of images (B, ...); got "
                          f"{getattr(x, 'shape', type(x).__name__)}")


def check_positive(**values: int) -> None:
    for name, v in values.items():
        if int(v) < 1:
            raise GenlabError(f"{name} must be a positive integer, got {v}")


def make_generator(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(int(seed))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate in eval mode without leaving the model changed."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def over_image_groups(x: torch.Tensor, group: int, fn: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> tuple[dict[str, np.ndarray], float]:
    """Run `fn` on groups of at most `group` images (memory bound), concatenate its per-image
    outputs and return them with the wall time per image."""
    start = time.perf_counter()
    outs: list[dict[str, torch.Tensor]] = [fn(x[i:i + group]) for i in range(0, x.shape[0], max(1, group))]
    seconds = (time.perf_counter() - start) / x.shape[0]
    return {k: np.concatenate([to_numpy(o[k]) for o in outs]) for k in outs[0]}, seconds
