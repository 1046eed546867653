"""The marginal-likelihood estimator of Appendix D of Kingma & Welling, "Auto-Encoding Variational
Bayes" (arXiv 1312.6114), the procedure the reference study used.

1. Draw L samples from the posterior p(z|x) ~ p(z) p(x|z) with HMC (burn-in with step-size
   adaptation, several chains per image).
2. Fit a density q(z) to them: a full-covariance Gaussian (default) or a Gaussian mixture.
3. Draw L *new* posterior samples and use  1/p(x) = E_{p(z|x)}[ q(z) / (p(z) p(x|z)) ]:
   log p(x) ~ -log (1/L) sum_l q(z_l) / (p(z_l) p(x|z_l)).

Why it breaks in high dimension: this is a harmonic-mean-type (reciprocal importance sampling)
estimator, 1/p(x) = E_posterior[q(z) / p(x, z)]. Its variance is finite only if q is lighter-tailed
than the posterior, and the ratio q/posterior enters multiplicatively over coordinates, so small
per-direction misfits compound exponentially with d. A full-covariance Gaussian fitted to L
correlated HMC samples has d(d+3)/2 parameters: once d^2 is not small against L its eigenvalues
spread (too narrow in some directions, too wide in others), the average is dominated by a few
samples the chains rarely visit, and the delta-method standard error is itself unreliable. On the
linear-Gaussian benchmark (where the posterior is exactly Gaussian, the most favourable case) it is
within 0.1 nats up to d = 32 at the defaults but off by several to ~20 nats at d = 128 with L = 1000;
Kingma & Welling restrict it to latent spaces of fewer than about 5 dimensions for real decoders,
whose posteriors are not Gaussian. Prefer AIS or IS for the 128-d study VAE.
"""

from __future__ import annotations

import math

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
from genlab.eval.hmc import DualAveraging, Point, hmc_step, value_and_grad

DENSITIES = ("gaussian", "gmm")


def posterior_target(model: nn.Module, x: torch.Tensor):
    """log p(z) + log p(x|z) and its gradient, as an HMC target over z (C, B, d)."""

    def target(z: torch.Tensor) -> Point:
        logp, grad = value_and_grad(lambda v: log_joint(model, x, v), z)
        return Point(z, logp, grad)

    return target


def _fit_log_density(fit: torch.Tensor, evaluate: torch.Tensor, density: str, n_components: int,
                     seed: int) -> torch.Tensor:
    """Fit q to `fit` (N, d) and return log q at `evaluate` (M, d), both float64."""
    if density == "gaussian":
        mean = fit.mean(0)
        cov = torch.cov(fit.T).reshape(fit.shape[1], fit.shape[1])
        cov = cov + 1e-6 * torch.eye(fit.shape[1], dtype=fit.dtype, device=fit.device)
        return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(evaluate)
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise GenlabError("the Appendix D 'gmm' density needs scikit-learn: pip install scikit-learn "
                          "(or use density='gaussian')") from err
    gmm = GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(fit.cpu().numpy())
    return torch.as_tensor(gmm.score_samples(evaluate.cpu().numpy()), device=evaluate.device)


def _check(n_samples: int, n_chains: int, n_leapfrog: int, batch_size: int, burn_in: int, density: str,
           target_accept: float) -> None:
    check_positive(n_samples=n_samples, n_chains=n_chains, n_leapfrog=n_leapfrog, batch_size=batch_size)
    if burn_in < 0:
        raise GenlabError(f"burn_in must be >= 0, got {burn_in}")
    if density not in DENSITIES:
        raise GenlabError(f"Appendix D density must be one of {DENSITIES}, got {density!r}")
    if not 0 < target_accept < 1:
        raise GenlabError(f"target_accept must be in (0, 1), got {target_accept}")


class Chains:
    """`n_chains` HMC chains per image over the posterior p(z|x) ~ p(z) p(x|z), started at the encoder."""

    def __init__(self, target, point: Point, mean: torch.Tensor, scale: torch.Tensor, n_leapfrog: int,
                 g: ImageRNG) -> None:
        self.target, self.point, self.mean, self.scale, self.n_leapfrog, self.g = target, point, mean, scale, n_leapfrog, g
        self.step = torch.zeros_like(mean[:, 0])

    @classmethod
    def at_the_encoder(cls, model: nn.Module, x: torch.Tensor, g: ImageRNG, n_chains: int, n_leapfrog: int,
                       precondition: bool) -> "Chains":
        """Chains drawn from q(z|x); `precondition` scales the momenta by the encoder's standard deviations."""
        with torch.no_grad():
            mean, logvar = model.encode(x)
        scale = torch.exp(0.5 * logvar) if precondition else torch.ones_like(mean)
        target = posterior_target(model, x)
        point = target(mean + scale * normal(g, (n_chains, *mean.shape), mean))
        return cls(target, point, mean, scale, n_leapfrog, g)

    def burn_in(self, n_steps: int, initial_step_size: float, target_accept: float) -> None:
        """Move the chains `n_steps` while adapting the step size per image; then freeze it."""
        adapt = DualAveraging(torch.full_like(self.mean[:, 0], initial_step_size), target_accept)
        for _ in range(n_steps):
            self.point, acc = hmc_step(self.point, self.target, adapt.step_size, self.n_leapfrog, self.scale, self.g)
            adapt.update(acc.mean(0))
        self.step = adapt.final() if n_steps else adapt.step_size

    def draw(self, n_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z, log p(x, z) and the acceptance probability after each of `n_steps` transitions, (steps, C, B, ...)."""
        zs, logps, accs = [], [], []
        for _ in range(n_steps):
            self.point, acc = hmc_step(self.point, self.target, self.step, self.n_leapfrog, self.scale, self.g)
            zs.append(self.point.z), logps.append(self.point.logp), accs.append(acc)
        return torch.stack(zs), torch.stack(logps), torch.stack(accs)


def reciprocal_estimate(z_fit: torch.Tensor, z_new: torch.Tensor, joint: torch.Tensor, mean: torch.Tensor,
                        scale: torch.Tensor, density: str, n_components: int, n_groups: int,
                        seed: int) -> dict[str, torch.Tensor]:
    """One image: fit q to `z_fit` (steps, C, d), then log p(x) = -log mean q(z) / p(x, z) over `z_new`
    with its log joint `joint` (steps, C); se from `n_groups` groups of chains, ESS, and the gain of
    all draws over the first quarter."""
    steps, n_chains, d = z_new.shape
    # Fit in the encoder's whitened coordinates (better conditioned); the Jacobian of
    # u = (z - mean) / scale turns log q(u) into log q(z).
    u_fit = ((z_fit - mean) / scale).reshape(-1, d).double()
    u_new = ((z_new - mean) / scale).double()
    log_q = _fit_log_density(u_fit, u_new.reshape(-1, d), density, n_components, seed)
    log_q = log_q.reshape(steps, n_chains) - scale.double().log().sum()
    log_ratio = log_q - joint.double()  # log q(z) / (p(z) p(x|z)), (steps, C)
    # chain after chain, so that a replicate group is whole chains (batch means)
    s = summarise_weights(log_ratio.T.reshape(-1), n_groups, unit=steps)
    lme_first = log_mean_exp_se(log_ratio[: max(1, steps // 4)].reshape(-1))[0]
    # (-lme) - (-lme_first): all draws minus the first quarter
    return {"log_px": -s["log_px"], "se": s["se"], "ess": s["ess"], "gain": lme_first - s["log_px"]}


def appendix_d(
    model: nn.Module,
    x: torch.Tensor,
    n_samples: int = 1000,
    *,
    n_chains: int = 20,
    burn_in: int = 50,
    n_leapfrog: int = 2,
    target_accept: float = 0.75,
    initial_step_size: float = 0.25,
    density: str = "gaussian",
    n_components: int = 5,
    precondition: bool = True,
    n_groups: int = 4,
    batch_size: int = 256,
    seed: int = 0,
    image_ids=None,
) -> Estimate:
    """Appendix D estimate of log p(x) per image with L = n_samples posterior samples for the fit
    and L new ones for the estimate, drawn by `n_chains` HMC chains per image started at the
    encoder. `precondition` scales the HMC momenta by the encoder's standard deviations (a fixed
    diagonal mass matrix; the target is unchanged). The standard error treats each chain's
    average as one independent draw (batch means), so it accounts for autocorrelation: se is the
    spread of `n_groups` disjoint groups of chains. ESS is that of the reciprocal weights
    q(z) / p(x, z) over all L draws; the gain is all L draws minus the first quarter.

    A diagnostic, not a bound: it can err in either direction, and with a 128-d latent its fitted
    q(z) is poor (see the module docstring). The table never takes it as the best value."""
    check_images(x)
    _check(n_samples, n_chains, n_leapfrog, batch_size, burn_in, density, target_accept)
    steps = math.ceil(n_samples / n_chains)
    rng = ImageRNG.for_images(x, seed, image_ids)

    def run(xb: torch.Tensor, g: ImageRNG) -> dict[str, torch.Tensor]:
        chains = Chains.at_the_encoder(model, xb, g, n_chains, n_leapfrog, precondition)
        chains.burn_in(burn_in, initial_step_size, target_accept)
        z_fit, _, acc_fit = chains.draw(steps)   # 1. L posterior samples to fit q(z) to
        z_new, joint, acc_new = chains.draw(steps)  # 2. L new ones for the estimate
        per_image = [reciprocal_estimate(z_fit[:, :, b], z_new[:, :, b], joint[:, :, b], chains.mean[b],
                                         chains.scale[b], density, n_components, n_groups, seed)
                     for b in range(xb.shape[0])]
        out = {k: torch.stack([o[k] for o in per_image]) for k in per_image[0]}
        out.update(acceptance=torch.cat([acc_fit, acc_new]).mean((0, 1)), step_size=chains.step)
        return out

    with eval_mode(model):
        out, seconds = over_image_groups(x, max(1, batch_size // n_chains), run, rng, progress="Appendix D")
    return Estimate(
        estimator="appendix-d", log_px=out["log_px"], se=out["se"], n_samples=steps * n_chains,
        seconds_per_image=seconds, acceptance=out["acceptance"], extras={"step_size": out["step_size"]},
        settings={"n_chains": n_chains, "burn_in": burn_in, "n_leapfrog": n_leapfrog,
                  "target_accept": target_accept, "density": density,
                  "n_components": n_components if density == "gmm" else 1,
                  "precondition": precondition, "n_groups": n_groups, "batch_size": batch_size, "seed": seed},
        ess=out["ess"], gain=out["gain"], kind="diagnostic",
        converged=converged(out["ess"], out["se"], out["gain"], n_chains, chains=True),
    )
