"""Importance sampling of log p(x), with a mode-centred (Laplace) proposal or the encoder.

log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q. Its expectation is a lower bound that
tightens as K grows (the IWAE bound when q is the encoder; the ELBO is its K = 1 case).

proposal="laplace" (the default): on the study's VAEs the encoder mean sits 100s of nats of log
joint below the posterior mode, so the encoder is a poor proposal and needs a huge K. Instead:
  1. climb from the encoder mean to the posterior mode of log p(z) + log p(x|z) (L-BFGS);
  2. take the curvature there: the precision P = -Hessian of the log joint (exact, by autograd;
     symmetrised, eigenvalues clamped to at least the prior precision 1);
  3. sample from a defensive mixture (1 - a) N(mode, P^-1) + a N(mode, s^2 P^-1) (a = 0.1,
     s = 1.25): the wide component bounds the weights where the posterior is wider than the fit.
Only the models' contract (`encode`, `log_prior`, `log_likelihood(x, z)`) is used.

Error bars, ESS and the convergence flag follow `genlab.eval.estimate` (10 disjoint blocks of K/10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genlab.defaults import IS_PROPOSALS, LOGLIK
from genlab.errors import GenlabError
from genlab.eval.estimate import (
    N_BLOCKS,
    Estimate,
    ImageRNG,
    check_images,
    check_positive,
    converged,
    eval_mode,
    log_joint,
    normal,
    over_image_groups,
    summarise_weights,
    uniform,
)
from genlab.models.distributions import LOG_2PI, log_normal_diag


@torch.no_grad()
def log_importance_weights(model: nn.Module, x: torch.Tensor, n_samples: int, batch_size: int,
                           generator) -> torch.Tensor:
    """Encoder proposal: log p(x, z_k) - log q(z_k|x) for K samples per image, (K, B); K is drawn
    in chunks so that one decoder call sees at most `batch_size` (sample, image) pairs.
    `generator` is a torch.Generator or an `ImageRNG` (one stream per image)."""
    mean, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    chunk = max(1, batch_size // x.shape[0])
    out = []
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        z = mean + std * normal(generator, (k, *mean.shape), mean)
        out.append(log_joint(model, x, z) - log_normal_diag(z, mean, logvar))
    return torch.cat(out)


# --- the mode-centred proposal -------------------------------------------------------------------
@dataclass
class LaplaceFit:
    """N(mode, root root^T) per image: mode (B, d), root (B, d, d), log|det root| (B,), and the
    log joint at the encoder mean and at the mode (how far the climb went)."""

    mode: torch.Tensor
    root: torch.Tensor
    log_det_root: torch.Tensor
    start_log_joint: torch.Tensor
    mode_log_joint: torch.Tensor
    mode_steps: int


def find_mode(model: nn.Module, x: torch.Tensor, z0: torch.Tensor, max_steps: int = 200,
              tol: float = 1e-3) -> tuple[torch.Tensor, int]:
    """Gradient ascent on log p(z) + log p(x|z) from z0 (B, d) with L-BFGS, one image at a time (so
    an image's mode does not depend on the other images). Stops when the log joint changes by
    less than `tol` nats over 10 iterations, or after `max_steps` iterations; returns the modes
    and the most iterations any image took."""
    modes, most = [], 0
    for b in range(x.shape[0]):
        z, steps = _climb(model, x[b:b + 1], z0[b:b + 1], max_steps, tol)
        modes.append(z)
        most = max(most, steps)
    return torch.cat(modes), most


def _climb(model: nn.Module, x: torch.Tensor, z0: torch.Tensor, max_steps: int, tol: float) -> tuple[torch.Tensor, int]:
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([z], lr=1, max_iter=10, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = -log_joint(model, x, z).sum()
        loss.backward()
        return loss

    steps = 0
    with torch.enable_grad():
        prev = log_joint(model, x, z).detach()
        while steps < max_steps:
            opt.step(closure)
            steps += 10
            now = log_joint(model, x, z).detach()
            if not torch.isfinite(now).all():
                raise GenlabError("the posterior-mode search diverged (non-finite log p(x, z)); "
                                  "use proposal='encoder'")
            if (now - prev).abs().max() < tol:
                break
            prev = now
    return z.detach(), steps


def hessian_log_joint(model: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """d^2 log p(x, z) / dz^2 per image, (B, d, d): one batched double backward per latent
    direction (images are independent, so their Hessian blocks come out together)."""
    d = z.shape[-1]
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_joint(model, x, z).sum(), z, create_graph=True)
        rows = [torch.autograd.grad(g[:, i].sum(), z, retain_graph=i < d - 1)[0] for i in range(d)]
    return torch.stack(rows, 1).detach()


def laplace_fit(model: nn.Module, x: torch.Tensor, mode_steps: int = 200) -> LaplaceFit:
    """The mode from the encoder mean, and a Gaussian with the clamped curvature there."""
    with torch.no_grad():
        mean, _ = model.encode(x)
        start = log_joint(model, x, mean)
    mode, steps = find_mode(model, x, mean, mode_steps)
    precision = -hessian_log_joint(model, x, mode).double()
    precision = 0.5 * (precision + precision.transpose(1, 2))
    evals, evecs = torch.linalg.eigh(precision)
    evals = evals.clamp(min=1.0)  # at least the prior precision: never wider than p(z) = N(0, I)
    root = evecs * evals.rsqrt()[:, None, :]  # root root^T = P^-1
    with torch.no_grad():
        at_mode = log_joint(model, x, mode)
    return LaplaceFit(mode, root.to(mode.dtype), -0.5 * evals.log().sum(-1), start, at_mode, steps)


@torch.no_grad()
def laplace_log_weights(model: nn.Module, x: torch.Tensor, fit: LaplaceFit, n_samples: int, batch_size: int,
                        rng, defensive: float = 0.1, inflation: float = 1.25) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k) for K draws of the defensive mixture around the mode, (K, B)."""
    d = fit.mode.shape[-1]
    chunk = max(1, batch_size // x.shape[0])
    log_a, log_1a = math.log(defensive) if defensive > 0 else -math.inf, math.log1p(-defensive)
    # all draws up front: an image's numbers must not depend on how K is cut into chunks
    u_all = normal(rng, (n_samples, *fit.mode.shape), fit.mode)
    wide_all = uniform(rng, (n_samples, fit.mode.shape[0]), fit.mode) < defensive
    out = []
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        u, wide = u_all[start:start + k], wide_all[start:start + k]
        u = torch.where(wide[..., None], u * inflation, u)
        z = fit.mode + torch.einsum("bij,kbj->kbi", fit.root, u)
        sq = u.double().pow(2).sum(-1)
        log_n = -0.5 * sq - 0.5 * d * LOG_2PI
        log_wide = -0.5 * sq / inflation**2 - d * math.log(inflation) - 0.5 * d * LOG_2PI
        log_q = torch.logaddexp(log_1a + log_n, log_a + log_wide) - fit.log_det_root
        out.append(log_joint(model, x, z).double() - log_q)
    return torch.cat(out)


def importance_sampling(model: nn.Module, x: torch.Tensor, n_samples: int = LOGLIK["samples"], *,
                        proposal: str = "laplace", defensive: float = 0.1, inflation: float = 1.25,
                        mode_steps: int = 200, n_blocks: int = N_BLOCKS, elbo_samples: int = 100, batch_size: int = 256,
                        seed: int = LOGLIK["seed"], image_ids=None) -> Estimate:
    """Per-image IS estimate of log p(x) (nats) with the replicate standard error (`n_blocks`
    disjoint blocks), the ESS of the weights, the gain from K/n_blocks to K and the converged flag.
    The ELBO and its se ride along in `extras`: the mean log weight with the encoder proposal,
    otherwise from `elbo_samples` extra encoder draws.
    Random numbers come from one stream per image (seeded by `seed` and the image's id), so an
    image's value does not depend on the other images scored with it."""
    check_images(x)
    check_positive(n_samples=n_samples, batch_size=batch_size, n_blocks=n_blocks, elbo_samples=elbo_samples)
    if proposal not in IS_PROPOSALS:
        raise GenlabError(f"IS proposal must be one of {IS_PROPOSALS}, got {proposal!r}")
    if not 0 <= defensive < 1 or inflation < 1:
        raise GenlabError(f"defensive must be in [0, 1) and inflation >= 1, got {defensive}, {inflation}")
    rng = ImageRNG.for_images(x, seed, image_ids)

    def run(xb: torch.Tensor, rb: ImageRNG) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if proposal == "encoder":
            log_w = log_importance_weights(model, xb, n_samples, batch_size, rb).double()
            out["elbo"] = log_w.mean(0)
            out["elbo_se"] = (log_w.std(0) / math.sqrt(n_samples) if n_samples > 1
                              else torch.full_like(out["elbo"], math.nan))
        else:
            fit = laplace_fit(model, xb, mode_steps)
            log_w = laplace_log_weights(model, xb, fit, n_samples, batch_size, rb, defensive, inflation)
            out["mode_log_joint"], out["encoder_mean_log_joint"] = fit.mode_log_joint, fit.start_log_joint
            # the ELBO beside it, from `elbo_samples` encoder draws (after the proposal's, same streams)
            elbo_w = log_importance_weights(model, xb, elbo_samples, batch_size, rb).double()
            out["elbo"] = elbo_w.mean(0)
            out["elbo_se"] = (elbo_w.std(0) / math.sqrt(elbo_samples) if elbo_samples > 1
                              else torch.full_like(out["elbo"], math.nan))
        out.update(summarise_weights(log_w, n_blocks))
        return out

    with eval_mode(model):
        out, seconds = over_image_groups(x, batch_size, run, rng, progress=f"IS ({proposal})")
    extras = {k: v for k, v in out.items() if k not in ("log_px", "se", "ess", "gain")}
    settings = {"proposal": "encoder q(z|x)" if proposal == "encoder" else "laplace", "n_blocks": n_blocks,
                "batch_size": batch_size, "seed": seed}
    if proposal == "laplace":
        settings.update(defensive=defensive, inflation=inflation, mode_steps=mode_steps, elbo_samples=elbo_samples)
    return Estimate(
        estimator="is", log_px=out["log_px"], se=out["se"], n_samples=n_samples, seconds_per_image=seconds,
        extras=extras, settings=settings, ess=out["ess"], gain=out["gain"],
        converged=converged(out["ess"], out["se"], out["gain"], n_samples), kind="lower bound",
    )
