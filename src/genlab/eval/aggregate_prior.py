"""An aggregate-posterior prior for a trained VAE: a Gaussian mixture (scikit-learn) fitted to the
posterior means of training images ("ex-post density estimation", Ghosh et al. 2020, "From
variational to deterministic autoencoders"). Sampling z from it instead of N(0, I) avoids the
regions of latent space that no training image's posterior covers, where a briefly trained VAE
decodes empty or blurred images. The VAE itself (and its ELBO and log-likelihoods, which use
N(0, I)) is unchanged; only the samples differ, and every figure says which prior it used.

Saved as RUN/priors/aggregate-gmm/prior.npz: the mixture's arrays and JSON settings, written
atomically and read back without pickle (`genlab.safe_load`); an old prior.pkl is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from genlab.errors import GenlabError
from genlab.models.sklearn_arrays import estimator_from_arrays, estimator_to_arrays
from genlab.runs import ARRAY_PRIOR_FILE, Run, refuse_pickled_prior
from genlab.safe_load import load_arrays, save_arrays

KIND = "aggregate-gmm"


class LatentGMM:
    """A Gaussian mixture over latent vectors; `sample(n, generator)` is seeded by the torch generator."""

    def __init__(self, components: int = 10, covariance: str = "full", seed: int = 0) -> None:
        self.components, self.covariance, self.seed = components, covariance, seed
        self.gmm: GaussianMixture | None = None
        self.fitted_on = 0

    def fit(self, z: np.ndarray) -> "LatentGMM":
        z = np.asarray(z, dtype=np.float64)
        if len(z) <= self.components:
            raise ValueError(f"the mixture needs more latents ({len(z)}) than components ({self.components})")
        self.gmm = GaussianMixture(self.components, covariance_type=self.covariance, random_state=self.seed,
                                   reg_covar=1e-4, max_iter=200).fit(z)
        self.fitted_on = len(z)
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, d) float32 latents: a component by its weight, then its Gaussian."""
        if self.gmm is None:
            raise RuntimeError("fit the mixture before sampling")
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator)) if generator is not None else self.seed
        rng = np.random.default_rng(seed)
        g = self.gmm
        comp = rng.choice(len(g.weights_), size=n, p=g.weights_ / g.weights_.sum())
        eps = rng.standard_normal((n, g.means_.shape[1]))
        if self.covariance == "full":
            chol = np.linalg.cholesky(g.covariances_)  # (K, d, d)
            z = g.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
        elif self.covariance == "diag":
            z = g.means_[comp] + np.sqrt(g.covariances_[comp]) * eps
        else:
            raise ValueError(f"unsupported covariance {self.covariance!r}")
        return torch.from_numpy(z.astype(np.float32))

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON settings) of the fitted mixture; `from_arrays` rebuilds it."""
        if self.gmm is None:
            raise RuntimeError("fit the mixture before saving it")
        arrays, gmm = estimator_to_arrays(self.gmm, "gmm")
        return arrays, {"kind": KIND, "components": self.components, "covariance": self.covariance,
                        "seed": self.seed, "fitted_on": self.fitted_on, "gmm": gmm}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], settings: dict[str, Any]) -> "LatentGMM":
        prior = cls(settings["components"], settings["covariance"], settings["seed"])
        prior.gmm = estimator_from_arrays(arrays, settings["gmm"], "gmm")
        prior.fitted_on = int(settings["fitted_on"])
        return prior

    def describe(self) -> str:
        return f"aggregate-posterior GMM ({self.components} {self.covariance}-covariance components, " \
               f"fitted on {self.fitted_on:,} training latents)"


def prior_path(run: Run) -> Path:
    return run.prior_dir(KIND) / ARRAY_PRIOR_FILE


@torch.no_grad()
def training_latents(run: Run, model: torch.nn.Module, n_images: int | None = None, batch_size: int = 256,
                     seed: int = 0) -> np.ndarray:
    """Posterior means of (a seeded subset of) the run's training images, (N, latent_dim)."""
    from genlab.data.registry import build_dataset

    cfg = run.config()
    data = build_dataset(cfg.data, "train", seed=cfg.trainer.seed)
    rows = np.arange(len(data))
    if n_images is not None and n_images < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), n_images, replace=False))
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        x = torch.stack([data[int(i)][0] for i in rows[start:start + batch_size]]).to(device)
        out.append(model.encode(x)[0].cpu().numpy())
    return np.concatenate(out)


def fit_aggregate_prior(run_dir: str | Path, n_images: int | None = 20000, components: int = 10,
                        covariance: str = "full", seed: int = 0) -> dict[str, Any]:
    """Fit the mixture on the run's training latents and save it; returns what was fitted."""
    run = Run.open(run_dir)
    model = run.load_model("best")
    if not hasattr(model, "encode") or not hasattr(model, "latent_dim"):
        raise GenlabError(f"{run.path}: an aggregate-posterior prior needs a VAE run (model {run.config().model.name})")
    z = training_latents(run, model, n_images, seed=seed)
    prior = LatentGMM(components, covariance, seed).fit(z)
    path = prior_path(run)
    save_arrays(path, *prior.to_arrays())
    return {"path": str(path), "components": components, "covariance": covariance, "fitted_on": len(z),
            "description": prior.describe()}


def ensure_aggregate_prior(run_dir: str | Path) -> dict[str, Any] | None:
    """Fit the run's aggregate prior if its config asks for one (`model.sample_prior: aggregate-gmm`,
    with `prior_components` and `prior_images`) and none is saved yet; what was fitted, else None."""
    run = Run.open(run_dir)
    m = run.config().model
    if getattr(m, "sample_prior", "standard") != KIND or prior_path(run).is_file():
        return None
    return fit_aggregate_prior(run.path, n_images=getattr(m, "prior_images", 20000),
                               components=getattr(m, "prior_components", 10), seed=run.config().trainer.seed)


def load_aggregate_prior(run: Run) -> LatentGMM:
    path = prior_path(run)
    refit = f"genlab.eval.aggregate_prior.fit_aggregate_prior({str(run.path)!r})"
    if not path.is_file():
        refuse_pickled_prior(path.parent, refit)
        raise GenlabError(f"{path} not found: fit it with {refit}")
    arrays, settings = load_arrays(path, "prior")
    if settings.get("kind") != KIND:
        raise GenlabError(f"{path}: not an aggregate-posterior prior; refit it with {refit}")
    try:
        return LatentGMM.from_arrays(arrays, settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise GenlabError(f"{path}: damaged aggregate-posterior prior ({type(exc).__name__}: {exc}); "
                          f"refit it with {refit}") from None
