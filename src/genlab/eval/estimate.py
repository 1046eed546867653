"""What every marginal-likelihood estimator returns, and the helpers they share.

Error bars and the convergence rule (one place, used by every estimator)
------------------------------------------------------------------------
* ESS: the effective sample size of the normalised weights, (sum w)^2 / sum w^2, over the
  importance samples (IS), the chains (AIS) or the reciprocal weights (Appendix D).
* se: the spread of independent replicates, not the delta-method value (which can never exceed
  ~1 nat, however bad the weights): the samples are cut into R disjoint blocks (IS: 10 blocks of
  K/10 samples; AIS and Appendix D: groups of chains), each block gives its own log p(x), and
  se = std(block estimates) / sqrt(R).
* gain: what the last samples added, a cheap convergence check. IS: log p(x) from all K minus the
  mean of the 10 block estimates at K/10. AIS: the full schedule minus a run with a quarter of the
  temperatures. Appendix D: all L samples minus the first quarter. A converged estimate gains ~0.
* converged = ESS >= min_ess  and  se <= 0.5 nat  and  |gain| <= 0.5 nat, where min_ess is 30 for
  importance samples and half the chains (at least 4) for AIS and Appendix D (`CONVERGENCE`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

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
    ess: np.ndarray | None = None        # (B,) effective sample size of the weights
    gain: np.ndarray | None = None       # (B,) nats added by the last samples (the convergence check)
    converged: np.ndarray | None = None  # (B,) bool, by `CONVERGENCE`
    kind: str = "lower bound"            # "lower bound" (stochastic), "upper bound" or "diagnostic"


# The one convergence rule (see the module docstring). Thresholds in nats.
CONVERGENCE = {"max_se": 0.5, "max_gain": 0.5, "min_ess_samples": 30, "min_ess_chain_fraction": 0.5,
               "min_ess_chains": 4}
N_BLOCKS = 10


def min_ess(n: int, chains: bool) -> float:
    """The ESS an estimate needs to count as converged: 30 importance samples, or half the chains."""
    if chains:
        return max(CONVERGENCE["min_ess_chains"], CONVERGENCE["min_ess_chain_fraction"] * n)
    return CONVERGENCE["min_ess_samples"]


def converged(ess, se, gain, n: int, chains: bool = False) -> np.ndarray:
    ess, se, gain = (np.asarray(v, dtype=np.float64) for v in (ess, se, gain))
    ok = (ess >= min_ess(n, chains)) & (se <= CONVERGENCE["max_se"]) & (np.abs(gain) <= CONVERGENCE["max_gain"])
    return ok & np.isfinite(se) & np.isfinite(gain)


def ess(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(sum w)^2 / sum w^2 along `dim`, from log weights (stable)."""
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


def replicates(log_w: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """log-mean-exp of each of `n_blocks` disjoint contiguous blocks along dim 0: (R, ...)."""
    n = log_w.shape[0]
    r = max(1, min(n_blocks, n))
    size = n // r
    blocks = log_w[: size * r].reshape(r, size, *log_w.shape[1:])
    return torch.logsumexp(blocks, 1) - math.log(size)


def replicate_se(block_estimates: torch.Tensor) -> torch.Tensor:
    """std of R independent replicate estimates / sqrt(R); NaN with a single replicate."""
    r = block_estimates.shape[0]
    if r < 2:
        return torch.full_like(block_estimates[0], math.nan)
    return block_estimates.std(0) / math.sqrt(r)


def summarise_weights(log_w: torch.Tensor, n_blocks: int = N_BLOCKS) -> dict[str, torch.Tensor]:
    """For (n, B) log weights: log p(x), replicate se, ESS, the gain over the block mean, and the
    delta-method se (kept for comparison only)."""
    log_px, delta = log_mean_exp_se(log_w, 0)
    blocks = replicates(log_w, n_blocks)
    return {"log_px": log_px, "se": replicate_se(blocks), "ess": ess(log_w, 0),
            "gain": log_px - blocks.mean(0), "delta_se": delta}


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


def image_seed(seed: int, image_id: Any) -> int:
    """A seed for one image from the run seed and the image's id: an image gets the same random
    numbers whichever other images are scored with it, in whatever order, in any process."""
    digest = hashlib.sha256(f"{int(seed)}:{image_id!r}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


class ImageRNG:
    """One torch.Generator per image. Every random tensor the estimators draw has the image axis
    at dim 1 ((samples or chains, B, ...)); each image's slice comes from its own generator."""

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators

    @classmethod
    def for_images(cls, x: torch.Tensor, seed: int, image_ids: Sequence | None = None) -> "ImageRNG":
        ids = range(x.shape[0]) if image_ids is None else image_ids
        if len(ids) != x.shape[0]:
            raise GenlabError(f"{len(ids)} image ids for {x.shape[0]} images")
        return cls([torch.Generator(device=x.device).manual_seed(image_seed(seed, i)) for i in ids])

    def __getitem__(self, index: slice) -> "ImageRNG":
        return ImageRNG(self.generators[index])

    def _draw(self, fn, shape, like: torch.Tensor) -> torch.Tensor:
        if len(shape) < 2 or shape[1] != len(self.generators):
            raise ValueError(f"random tensor of shape {tuple(shape)}: dim 1 must be the {len(self.generators)} images")
        rest = (shape[0], *shape[2:])
        return torch.stack([fn(rest, generator=g, device=like.device, dtype=like.dtype) for g in self.generators], 1)

    def normal(self, shape, like: torch.Tensor) -> torch.Tensor:
        return self._draw(torch.randn, tuple(shape), like)

    def uniform(self, shape, like: torch.Tensor) -> torch.Tensor:
        return self._draw(torch.rand, tuple(shape), like)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate in eval mode without leaving the model changed."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def over_image_groups(x: torch.Tensor, group: int, fn: Callable[..., dict[str, torch.Tensor]],
                      rng: ImageRNG | None = None, progress: str | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Run `fn` on groups of at most `group` images (memory bound), concatenate its per-image
    outputs and return them with the CPU/GPU wall time per image. With `rng`, `fn` gets the
    group's slice of it as a second argument. `progress` names a rich progress bar (transient)."""
    start = time.perf_counter()
    group = max(1, group)
    starts = list(range(0, x.shape[0], group))
    outs: list[dict[str, torch.Tensor]] = []
    with progress_bar(progress, x.shape[0]) as advance:
        for i in starts:
            xb = x[i:i + group]
            outs.append(fn(xb) if rng is None else fn(xb, rng[i:i + group]))
            advance(xb.shape[0])
    seconds = (time.perf_counter() - start) / x.shape[0]
    return {k: np.concatenate([to_numpy(o[k]) for o in outs]) for k in outs[0]}, seconds


@contextlib.contextmanager
def progress_bar(description: str | None, total: int):
    """A transient rich progress bar over images on an interactive terminal; a no-op otherwise
    (tests, pipes). Yields `advance(n)`."""
    if description is None or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
