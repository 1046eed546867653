"""Hamiltonian Monte Carlo over many independent chains at once, for the likelihood estimators.

Written here rather than taken from Pyro/NumPyro because those accept or reject the *whole* state
jointly: we need every (chain, image) pair to be its own chain with its own accept/reject and a
step size per image, all driven by one batched decoder call per leapfrog step.

Shapes: z is (C, B, d) -- C chains for each of B images. A target maps z to a `Point` holding the
log density (C, B), its gradient (C, B, d) and any cached `parts` (tensors with leading (C, B))
that must follow the accepted state, e.g. the pieces AIS re-weights when the temperature moves.
A diagonal `scale` (B, d) preconditions the dynamics (inverse mass matrix = scale^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from genlab.eval.estimate import normal, uniform


@dataclass
class Point:
    z: torch.Tensor
    logp: torch.Tensor
    grad: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


Target = Callable[[torch.Tensor], Point]


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fn(z) (C, B) and d fn / dz, one backward pass; no parameter gradients are accumulated."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = fn(z)
        (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad.detach()


def _select(accept: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    mask = accept.reshape(accept.shape + (1,) * (new.dim() - accept.dim()))
    return torch.where(mask, new, old)


def hmc_step(
    point: Point,
    target: Target,
    step_size: torch.Tensor,
    n_leapfrog: int,
    scale: torch.Tensor | None = None,
    generator=None,
) -> tuple[Point, torch.Tensor]:
    """One HMC transition per chain. `step_size` is (B,); `generator` a torch.Generator or an
    `ImageRNG` (genlab.eval.estimate.normal). Returns the new point and the Metropolis
    acceptance probability min(1, exp(-dH)) per chain (C, B)."""
    z0 = point.z
    eps = step_size.to(z0.dtype)[:, None]  # (B, 1), broadcasts over chains and latent dims
    s = torch.ones_like(z0[0]) if scale is None else scale
    # Momentum in whitened units r ~ N(0, I): dz = eps * s * r, dr = eps * s * grad log p.
    r0 = normal(generator, z0.shape, z0)
    r = r0 + 0.5 * eps * s * point.grad
    z = z0
    for i in range(n_leapfrog):
        z = z + eps * s * r
        new = target(z)
        if i < n_leapfrog - 1:
            r = r + eps * s * new.grad
    r = r + 0.5 * eps * s * new.grad
    log_ratio = (new.logp - 0.5 * r.pow(2).sum(-1)) - (point.logp - 0.5 * r0.pow(2).sum(-1))
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    accept_prob = log_ratio.clamp(max=0).exp()
    u = uniform(generator, accept_prob.shape, z0)
    accept = u < accept_prob
    out = Point(
        _select(accept, new.z, point.z),
        _select(accept, new.logp, point.logp),
        _select(accept, new.grad, point.grad),
        {k: _select(accept, new.parts[k], v) for k, v in point.parts.items()},
    )
    return out, accept_prob


class DualAveraging:
    """Per-image step-size adaptation towards a target acceptance rate (Hoffman & Gelman 2014,
    Algorithm 5). `update` takes the mean acceptance probability over chains (B,)."""

    def __init__(self, initial: torch.Tensor, target: float, gamma=0.05, t0=10.0, kappa=0.75) -> None:
        self.mu = torch.log(10 * initial)
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.h_bar = torch.zeros_like(initial)
        self.log_eps_bar = torch.zeros_like(initial)
        self.t = 0
        self.step_size = initial.clone()

    def update(self, accept_rate: torch.Tensor) -> torch.Tensor:
        self.t += 1
        t = self.t
        w = 1.0 / (t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (self.target - accept_rate)
        log_eps = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t ** (-self.kappa)
        self.log_eps_bar = eta * log_eps + (1 - eta) * self.log_eps_bar
        self.step_size = log_eps.exp()
        return self.step_size

    def final(self) -> torch.Tensor:
        """The averaged step size, to be frozen after burn-in."""
        return self.log_eps_bar.exp()
