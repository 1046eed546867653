"""Annealed importance sampling and bidirectional Monte Carlo (Wu et al. 2017, "On the Quantitative
Analysis of Decoder-Based Generative Models"; Grosse et al. 2016 for BDMC).

Intermediate densities f_t(z) = p0(z)^(1 - beta_t) (p(z) p(x|z))^beta_t for 0 = beta_0 < ... < beta_T = 1,
with p0 the prior or the encoder q(z|x); one HMC transition per temperature. Each chain's log weight
sum_t (beta_t - beta_{t-1}) h(z_{t-1}),  h = log p(z) + log p(x|z) - log p0(z), is an unbiased
estimate of p(x) in exp-space, so the log-mean-exp over chains is a stochastic lower bound.

BDMC: for data simulated from the model, the z that generated x is an exact posterior sample.
Running the same chain backwards from it (beta from 1 to 0) gives an unbiased estimate of 1/p(x),
hence a stochastic upper bound; the true log p(x) is bracketed and the gap measures AIS's error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.eval.estimate import (
    Estimate,
    ImageRNG,
    check_images,
    check_positive,
    converged,
    eval_mode,
    log_joint,
    log_mean_exp_se,
    normal,
    over_image_groups,
    summarise_weights,
)
from genlab.eval.hmc import Point, hmc_step, value_and_grad
from genlab.models.distributions import log_normal_diag

SCHEDULES = ("sigmoid", "geometric", "linear")
INITS = ("prior", "encoder")
MIN_STEP, MAX_STEP = 1e-4, 2.0


def schedule(name: str, n_intermediate: int, *, sigmoid_delta: float = 4.0, geometric_start: float = 1e-4) -> torch.Tensor:
    """Inverse temperatures beta_0 = 0 < ... < beta_T = 1 (T = n_intermediate), float64.
    sigmoid: rescaled logistic of a linear grid (Grosse et al. 2015), dense at both ends;
    geometric: log-spaced from `geometric_start` (dense near the prior); linear: evenly spaced."""
    if name not in SCHEDULES:
        raise GenlabError(f"AIS schedule must be one of {SCHEDULES}, got {name!r}")
    check_positive(n_intermediate=n_intermediate)
    t = torch.linspace(0, 1, n_intermediate + 1, dtype=torch.float64)
    if name == "linear":
        return t
    if name == "geometric":
        betas = torch.cat([torch.zeros(1, dtype=torch.float64),
                           torch.logspace(math.log10(geometric_start), 0, n_intermediate, dtype=torch.float64)])
        return betas
    s = torch.sigmoid(sigmoid_delta * (2 * t - 1))
    return (s - s[0]) / (s[-1] - s[0])


@torch.no_grad()
def simulate(model: nn.Module, n: int, seed: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Data from the model itself, z ~ p(z), x ~ p(x|z); returns (x, z). Each z is an exact
    posterior sample for its x, which is what BDMC's reverse chain starts from."""
    g = torch.Generator(device=device).manual_seed(int(seed))
    z = torch.randn((n, model.latent_dim), generator=g, device=device)
    mean = model.decode(z)
    if model.likelihood == "gaussian":
        x = mean + model.sigma * torch.randn(mean.shape, generator=g, device=device)
    elif model.likelihood == "bernoulli":
        x = (torch.rand(mean.shape, generator=g, device=device) < mean).to(mean.dtype)
    else:
        raise GenlabError(f"cannot simulate from a {model.likelihood!r} likelihood")
    return x, z


class _Path:
    """The annealing path for a batch of images: p0, the log joint, and f_beta built from them."""

    def __init__(self, model: nn.Module, x: torch.Tensor, init: str) -> None:
        self.model, self.x, self.init = model, x, init
        with torch.no_grad():
            self.mean, self.logvar = model.encode(x)
        if init == "prior":
            self.mean, self.logvar = torch.zeros_like(self.mean), torch.zeros_like(self.logvar)

    @property
    def scale(self) -> torch.Tensor | None:
        """HMC's preconditioner: the encoder's standard deviations (init='encoder'), else none."""
        return torch.exp(0.5 * self.logvar) if self.init == "encoder" else None

    def sample_p0(self, n_chains: int, g: ImageRNG) -> torch.Tensor:
        eps = normal(g, (n_chains, *self.mean.shape), self.mean)
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def evaluate(self, z: torch.Tensor, beta: float) -> Point:
        joint, g_joint = value_and_grad(lambda v: log_joint(self.model, self.x, v), z)
        log_p0 = log_normal_diag(z, self.mean, self.logvar)
        g_p0 = -(z - self.mean) * torch.exp(-self.logvar)  # analytic: no second backward pass
        return self.at(Point(z, log_p0, g_p0, {"log_p0": log_p0, "g_p0": g_p0, "log_joint": joint, "g_joint": g_joint}), beta)

    @staticmethod
    def at(p: Point, beta: float) -> Point:
        """The same state scored under f_beta (no model evaluation)."""
        q = p.parts
        return Point(p.z, (1 - beta) * q["log_p0"] + beta * q["log_joint"], (1 - beta) * q["g_p0"] + beta * q["g_joint"], q)

    @staticmethod
    def h(p: Point) -> torch.Tensor:
        return p.parts["log_joint"] - p.parts["log_p0"]


def _anneal(path: _Path, point: Point, betas: torch.Tensor, steps: torch.Tensor | None, n_leapfrog: int,
            scale: torch.Tensor | None, g: ImageRNG, step_size: float, target_accept: float):
    """Move `point` along `betas` (forward 0->1 or reverse 1->0): weight update, then one HMC
    transition at the new temperature. With `steps` None the step size adapts per image (Wu et al.:
    x1.02 above the target acceptance, x0.98 below) and the sizes used are returned for replay."""
    log_w = torch.zeros_like(point.logp, dtype=torch.float64)
    eps = torch.full_like(path.mean[:, 0], step_size)
    used, accs = [], []
    for t in range(1, len(betas)):
        b_prev, b = float(betas[t - 1]), float(betas[t])
        log_w += (b - b_prev) * _Path.h(point).double()
        point = _Path.at(point, b)
        if steps is not None:
            eps = steps[t - 1]
        used.append(eps)
        point, acc = hmc_step(point, lambda z, b=b: path.evaluate(z, b), eps, n_leapfrog, scale, g)
        accs.append(acc.mean(0))
        if steps is None:
            eps = torch.where(acc.mean(0) > target_accept, eps * 1.02, eps * 0.98).clamp(MIN_STEP, MAX_STEP)
    return point, log_w, torch.stack(used), torch.stack(accs).mean(0)


def _check(n_chains, n_intermediate, n_leapfrog, batch_size, init, schedule_name) -> None:
    check_positive(n_chains=n_chains, n_intermediate=n_intermediate, n_leapfrog=n_leapfrog, batch_size=batch_size)
    if init not in INITS:
        raise GenlabError(f"AIS init must be one of {INITS}, got {init!r}")
    if schedule_name not in SCHEDULES:
        raise GenlabError(f"AIS schedule must be one of {SCHEDULES}, got {schedule_name!r}")


def ais(
    model: nn.Module,
    x: torch.Tensor,
    *,
    n_chains: int = 16,
    n_intermediate: int = 500,
    schedule_name: str = "sigmoid",
    init: str = "encoder",
    n_leapfrog: int = 2,
    step_size: float = 0.1,
    target_accept: float = 0.65,
    n_groups: int = 4,
    check: bool = True,
    batch_size: int = 256,
    seed: int = 0,
    image_ids=None,
    _return_steps: bool = False,
):
    """AIS estimate of log p(x) per image: log-mean-exp of `n_chains` importance weights. The se is
    the spread of `n_groups` disjoint groups of chains; ESS is over the chain weights. With
    `check`, a second run with a quarter of the temperatures gives the convergence gain (full
    minus quarter), at 25% extra cost; without it the estimate is never flagged converged.
    init='encoder' starts at q(z|x) and preconditions HMC by the encoder's standard deviations
    (far cheaper on a trained VAE); init='prior' is Wu et al.'s setting (identity mass matrix).
    The step size adapts per image towards `target_accept` along the path."""
    check_images(x)
    _check(n_chains, n_intermediate, n_leapfrog, batch_size, init, schedule_name)
    check_positive(n_groups=n_groups)
    betas = schedule(schedule_name, n_intermediate)
    quarter = schedule(schedule_name, max(1, n_intermediate // 4))
    rng = ImageRNG.for_images(x, seed, image_ids)
    steps_used = []

    def run(xb: torch.Tensor, rb: ImageRNG) -> dict[str, torch.Tensor]:
        path = _Path(model, xb, init)
        log_w, used, acc = forward_chains(path, n_chains, betas, n_leapfrog, rb, step_size, target_accept)
        steps_used.append(used)
        out = {k: v for k, v in summarise_weights(log_w, n_groups).items() if k != "gain"}
        out.update(acceptance=acc, final_step_size=used[-1])
        if check:  # the convergence gain: full schedule minus a run with a quarter of the temperatures
            log_w4, _, _ = forward_chains(path, n_chains, quarter, n_leapfrog, rb, step_size, target_accept)
            out["quarter_log_px"] = log_mean_exp_se(log_w4, 0)[0]
            out["gain"] = out["log_px"] - out["quarter_log_px"]
        else:
            out["gain"] = torch.full_like(out["log_px"], math.nan)
        return out

    with eval_mode(model):
        out, seconds = over_image_groups(x, max(1, batch_size // n_chains), run, rng, progress="AIS")
    settings = dict(n_chains=n_chains, n_intermediate=n_intermediate, schedule=schedule_name, init=init,
                    n_leapfrog=n_leapfrog, step_size=step_size, target_accept=target_accept, n_groups=n_groups,
                    check=check, batch_size=batch_size, seed=seed)
    est = forward_estimate(out, seconds, settings)
    return (est, torch.cat(steps_used, dim=1)) if _return_steps else est


def forward_chains(path: _Path, n_chains: int, betas: torch.Tensor, n_leapfrog: int, rng: ImageRNG,
                   step_size: float, target_accept: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward AIS run of `n_chains` chains per image, from p0 to the posterior along `betas`:
    the chains' log weights (C, B), the step sizes used (T, B) and the mean acceptance (B,)."""
    point = path.evaluate(path.sample_p0(n_chains, rng), 0.0)
    _, log_w, used, acc = _anneal(path, point, betas, None, n_leapfrog, path.scale, rng, step_size, target_accept)
    return log_w, used, acc


def forward_estimate(out: dict[str, np.ndarray], seconds: float, settings: dict) -> Estimate:
    """The AIS `Estimate` from the per-image outputs of the forward runs."""
    n_chains = settings["n_chains"]
    return Estimate(
        estimator="ais", log_px=out["log_px"], se=out["se"], n_samples=n_chains, seconds_per_image=seconds,
        acceptance=out["acceptance"],
        extras={k: out[k] for k in ("final_step_size", "delta_se", "quarter_log_px") if k in out},
        settings=settings, ess=out["ess"], gain=out["gain"],
        converged=converged(out["ess"], out["se"], out["gain"], n_chains, chains=True), kind="lower bound",
    )


@dataclass
class BDMCResult:
    lower: Estimate   # forward AIS: stochastic lower bound on log p(x)
    upper: Estimate   # reverse AIS from the exact z: stochastic upper bound

    @property
    def gap(self) -> np.ndarray:
        """upper - lower per image (nats): an upper bound on either side's error, in expectation."""
        return self.upper.log_px - self.lower.log_px


def bdmc(model: nn.Module, x: torch.Tensor, z_exact: torch.Tensor, **ais_options) -> BDMCResult:
    """Bidirectional Monte Carlo on simulated data (x, z_exact), e.g. from `simulate`. Runs forward
    AIS, then the reverse chain from z_exact with the same schedule and the step sizes the forward
    chain adapted, replayed backwards. Options are those of `ais`."""
    check_images(x)
    if z_exact.shape != (x.shape[0], model.latent_dim):
        raise GenlabError(f"z_exact must be (B, latent_dim) = ({x.shape[0]}, {model.latent_dim}), got {tuple(z_exact.shape)}")
    lower, steps = ais(model, x, _return_steps=True, **ais_options)
    o = lower.settings
    n_chains, n_leapfrog, batch_size = o["n_chains"], o["n_leapfrog"], o["batch_size"]
    betas = schedule(o["schedule"], o["n_intermediate"])
    rng = ImageRNG.for_images(x, o["seed"] + 1, ais_options.get("image_ids"))
    group = max(1, batch_size // n_chains)

    def run_reverse(xb: torch.Tensor, g: ImageRNG, zb: torch.Tensor, fwd_by_image: torch.Tensor) -> dict[str, torch.Tensor]:
        path = _Path(model, xb, o["init"])
        point = path.evaluate(zb.to(path.mean).expand(n_chains, *zb.shape).clone(), 1.0)
        # Going back, the transition at beta_t (forward step size steps[t-1]) follows the weight
        # update from beta_{t+1} to beta_t; the last one (at beta_0) has no forward twin and is unused.
        fwd = fwd_by_image.T  # (T, group), as the forward run used them
        rev_betas = betas.flip(0)
        rev_steps = torch.cat([fwd[:-1].flip(0), fwd[:1]])
        _, log_w, _, acc = _anneal(path, point, rev_betas, rev_steps, n_leapfrog, path.scale, g, 0.0, 0.0)
        # log_w estimates log 1/p(x); the upper bound is minus its log-mean-exp.
        s = summarise_weights(log_w, o["n_groups"])
        return {"log_px": -s["log_px"], "se": s["se"], "acceptance": acc, "ess": s["ess"]}

    with eval_mode(model):
        out, seconds = over_image_groups(x, group, run_reverse, rng, progress="BDMC (reverse AIS)",
                                         per_image=(z_exact, steps.T))
    upper = Estimate(
        estimator="ais-reverse", log_px=out["log_px"], se=out["se"], n_samples=n_chains, seconds_per_image=seconds,
        acceptance=out["acceptance"], settings=dict(o), ess=out["ess"], kind="upper bound",
    )
    return BDMCResult(lower, upper)
