"""What every marginal-likelihood estimator returns, and the toolkit they share: the log joint
(`log_joint`), random numbers (`normal`, `uniform`: from a torch.Generator or one stream per image,
`ImageRNG`), replicate blocks and groups of chains (`replicates`, `summarise_weights`), and running
over groups of images with a progress bar (`over_image_groups`). IS, AIS, BDMC and Appendix D use
these and nothing of their own.

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
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.progress import progress as progress_bar


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


def replicates(log_w: torch.Tensor, n_blocks: int, unit: int = 1) -> torch.Tensor:
    """log-mean-exp of each of `n_blocks` disjoint contiguous blocks along dim 0: (R, ...). Blocks hold
    whole units of `unit` entries (e.g. all the draws of one chain, stored chain after chain), so a
    block is a group of chains; entries past the last whole block are left out of the blocks."""
    units = log_w.shape[0] // unit
    r = max(1, min(n_blocks, units))
    size = (units // r) * unit
    blocks = log_w[: size * r].reshape(r, size, *log_w.shape[1:])
    return torch.logsumexp(blocks, 1) - math.log(size)


def replicate_se(block_estimates: torch.Tensor) -> torch.Tensor:
    """std of R independent replicate estimates / sqrt(R); NaN with a single replicate."""
    r = block_estimates.shape[0]
    if r < 2:
        return torch.full_like(block_estimates[0], math.nan)
    return block_estimates.std(0) / math.sqrt(r)


def summarise_weights(log_w: torch.Tensor, n_blocks: int = N_BLOCKS, unit: int = 1) -> dict[str, torch.Tensor]:
    """For (n, B) log weights: log p(x), replicate se (blocks of whole `unit`s, see `replicates`), ESS,
    the gain over the block mean, and the delta-method se (kept for comparison only). IS's blocks of
    samples, AIS's and BDMC's groups of chains and Appendix D's groups of chains all come from here."""
    log_px, delta = log_mean_exp_se(log_w, 0)
    blocks = replicates(log_w, n_blocks, unit)
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


def log_joint(model: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(z) + log p(x|z), z (..., B, d) -> (..., B): the unnormalised posterior every estimator targets."""
    return model.log_prior(z) + model.log_likelihood(x, z)


def normal(rng, shape, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) numbers of `shape` on `like`'s device and dtype, from `rng`: an `ImageRNG` (one stream per
    image, image axis 1), a torch.Generator, or None (torch's global generator)."""
    if isinstance(rng, ImageRNG):
        return rng.normal(shape, like)
    return torch.randn(shape, generator=rng, device=like.device, dtype=like.dtype)


def uniform(rng, shape, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) numbers, from `rng` as in `normal`."""
    if isinstance(rng, ImageRNG):
        return rng.uniform(shape, like)
    return torch.rand(shape, generator=rng, device=like.device, dtype=like.dtype)


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
                      rng: ImageRNG | None = None, progress: str | None = None,
                      per_image: Sequence[torch.Tensor] = ()) -> tuple[dict[str, np.ndarray], float]:
    """Run `fn` on groups of at most `group` images (memory bound), concatenate its per-image
    outputs and return them with the CPU/GPU wall time per image. With `rng`, `fn` gets the
    group's slice of it as a second argument; then the group's rows of each `per_image` tensor
    (image axis 0). `progress` names the progress bar (`genlab.progress`)."""
    start = time.perf_counter()
    group = max(1, group)
    outs: list[dict[str, torch.Tensor]] = []
    with progress_bar(progress, x.shape[0]) as advance:
        for i in range(0, x.shape[0], group):
            rows = slice(i, i + group)
            extra = [t[rows] for t in per_image]
            outs.append(fn(x[rows], *extra) if rng is None else fn(x[rows], rng[rows], *extra))
            advance(x[rows].shape[0])
    seconds = (time.perf_counter() - start) / x.shape[0]
    return {k: np.concatenate([to_numpy(o[k]) for o in outs]) for k in outs[0]}, seconds
