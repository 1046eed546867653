"""Marginal log-likelihood of images under a latent-variable model: every estimator side by side.

The estimators live in their own modules (importance.py, appendix_d.py, ais.py, hmc.py); this one
runs the chosen ones on the *same* images and gathers one row per image: the ELBO, and for each
estimator log p(x) in nats +- se, bits/dim +- se and log10 p(x) (the study's raw probabilities),
with the estimator's name, sample count, HMC acceptance rate and run time per image.

    table = loglik_table(model, images, image_ids, estimators=("is", "appendix-d", "ais"), samples=5000)
    table.save(run_dir / "loglik.json"); rich.print(table.rich_table())

Run time per image at the defaults on the study's 64x64 ConvVAE (latent 128), 2 CPU threads,
measured as CPU seconds (benchmarks/RESULTS.md): IS K=5000 ~34 s, Appendix D (L=1000) ~103 s,
AIS (16 chains x 200 temperatures, encoder init) ~128 s. Wall time is higher on a loaded machine.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.eval import units
from genlab.eval.ais import BDMCResult, ais, bdmc, simulate  # noqa: F401  (re-exported)
from genlab.eval.appendix_d import appendix_d
from genlab.eval.estimate import Estimate, check_images
from genlab.eval.importance import importance_sampling
from genlab.io import atomic_write_json

ESTIMATORS = ("is", "appendix-d", "ais")
NAMES = {
    "is": "importance sampling, encoder proposal (IWAE)",
    "appendix-d": "Kingma & Welling Appendix D (HMC + fitted q(z), reciprocal IS)",
    "ais": "annealed importance sampling (Wu et al. 2017)",
}
# How many samples each estimator averages when the caller passes `samples`: IS uses it as K.
# Appendix D (L) and AIS (chains x temperatures) cost one or more decoder gradients per sample,
# so they keep their own defaults (see their functions) unless given options.
DEFAULT_ELBO_SAMPLES = 100


def resolve_estimators(names: str | Sequence[str]) -> tuple[str, ...]:
    """'all', one name, or a sequence of names -> a tuple in canonical order."""
    if isinstance(names, str):
        names = ESTIMATORS if names == "all" else (names,)
    names = tuple(dict.fromkeys(n.replace("_", "-") for n in names))
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown or not names:
        raise GenlabError(f"unknown log-likelihood estimator {unknown or names!r}; choose from "
                          f"{', '.join(ESTIMATORS)} or 'all'")
    return tuple(n for n in ESTIMATORS if n in names)


@dataclass
class LoglikTable:
    image_ids: list
    num_dims: int
    likelihood: str
    elbo: np.ndarray
    elbo_se: np.ndarray
    elbo_samples: int
    estimates: dict[str, Estimate] = field(default_factory=dict)
    seed: int = 0

    @property
    def convention(self) -> str:
        return units.convention(self.likelihood)

    def _bpd_se(self, se: np.ndarray) -> np.ndarray:
        return np.asarray(se) / (self.num_dims * math.log(2))

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for i, image_id in enumerate(self.image_ids):
            row: dict[str, Any] = {"id": image_id, "elbo": float(self.elbo[i]), "elbo_se": float(self.elbo_se[i])}
            for name, est in self.estimates.items():
                row[name] = {
                    "log_px": float(est.log_px[i]),
                    "se": float(est.se[i]),
                    "bits_per_dim": float(units.bits_per_dim(est.log_px[i], self.num_dims, self.likelihood)),
                    "bits_per_dim_se": float(self._bpd_se(est.se[i])),
                    "log10_px": float(units.nats_to_log10(est.log_px[i])),
                    "log10_px_se": float(est.se[i] / math.log(10)),
                    "acceptance": None if est.acceptance is None else float(est.acceptance[i]),
                }
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "likelihood": self.likelihood,
            "num_dims": self.num_dims,
            "convention": self.convention,
            "units": {"log_px": "nats per image", "bits_per_dim": "bits per dimension",
                      "log10_px": "log10 p(x) (p = 10 ** value)", "se": "one standard error"},
            "seed": self.seed,
            "elbo": {"n_samples": self.elbo_samples, "note": "true ELBO (beta = 1), mean over encoder samples"},
            "estimators": {
                name: {"name": NAMES[name], "n_samples": est.n_samples,
                       "seconds_per_image": est.seconds_per_image,
                       "mean_acceptance": None if est.acceptance is None else float(np.mean(est.acceptance)),
                       "settings": est.settings}
                for name, est in self.estimates.items()
            },
            "images": self.rows(),
        }

    def save(self, path: str | Path) -> Path:
        atomic_write_json(path, self.to_dict())
        return Path(path)

    def rich_table(self):
        from rich.table import Table

        table = Table(title="log p(x) per image: nats +- se | bits/dim | log10 p(x)",
                      caption=self._caption(), caption_justify="left")
        table.add_column("image", justify="right")
        table.add_column("ELBO (nats)", justify="right")
        for name in self.estimates:
            table.add_column(f"{name} (nats)", justify="right")
            table.add_column(f"{name} bits/dim", justify="right")
            table.add_column(f"{name} log10 p", justify="right")
        for row in self.rows():
            cells = [str(row["id"]), f"{row['elbo']:.2f} ± {row['elbo_se']:.2f}"]
            for name in self.estimates:
                r = row[name]
                cells += [f"{r['log_px']:.2f} ± {r['se']:.2f}", f"{r['bits_per_dim']:.4f} ± {r['bits_per_dim_se']:.4f}",
                          f"{r['log10_px']:.2f}"]
            table.add_row(*cells)
        return table

    def _caption(self) -> str:
        lines = [self.convention, f"ELBO: {self.elbo_samples} encoder samples per image"]
        for name, est in self.estimates.items():
            acc = "" if est.acceptance is None else f", HMC acceptance {np.mean(est.acceptance):.2f}"
            lines.append(f"{name}: {NAMES[name]}; {est.n_samples} samples{acc}, "
                         f"{est.seconds_per_image:.2f} s/image")
        return "\n".join(lines)


def loglik_table(
    model: nn.Module,
    images: torch.Tensor,
    image_ids: Sequence | None = None,
    estimators: str | Sequence[str] = ("is",),
    samples: int = 5000,
    seed: int = 0,
    batch_size: int = 256,
    **estimator_options: dict[str, Any],
) -> LoglikTable:
    """Run the chosen estimators on the same `images` (B, C, H, W) and gather one row per image.

    samples: K for importance sampling. Appendix D and AIS take their options from keyword
    dicts named after them, e.g. appendix_d={"n_samples": 1000, "density": "gmm"},
    ais={"n_chains": 16, "n_intermediate": 200, "init": "prior"}; `is_` passes IS options.
    The ELBO comes from the IS log-weights when IS runs, otherwise from 100 encoder samples.
    """
    check_images(images)
    names = resolve_estimators(estimators)
    ids = list(range(images.shape[0])) if image_ids is None else [_plain(i) for i in image_ids]
    if len(ids) != images.shape[0]:
        raise GenlabError(f"{len(ids)} image ids for {images.shape[0]} images")
    options = {k.rstrip("_").replace("_", "-"): dict(v) for k, v in estimator_options.items()}
    unknown = set(options) - set(ESTIMATORS)
    if unknown:
        raise GenlabError(f"options for unknown estimators {sorted(unknown)}; use is_=..., appendix_d=..., ais=...")
    common = {"batch_size": batch_size, "seed": seed}
    estimates: dict[str, Estimate] = {}
    for name in names:
        fn = _FUNCTIONS[name]
        opts = {**common, **options.get(name, {})}
        allowed = set(inspect.signature(fn).parameters) - {"model", "x", "_return_steps"}
        if set(opts) - allowed:
            raise GenlabError(f"unknown option(s) {sorted(set(opts) - allowed)} for estimator {name!r}; "
                              f"it takes {sorted(allowed)}")
        if name == "is":
            opts.setdefault("n_samples", samples)
        estimates[name] = fn(model, images, **opts)
    elbo_src = estimates.get("is") or importance_sampling(model, images, DEFAULT_ELBO_SAMPLES, **common)
    return LoglikTable(
        image_ids=ids, num_dims=int(images[0].numel()), likelihood=str(model.likelihood),
        elbo=elbo_src.extras["elbo"], elbo_se=elbo_src.extras["elbo_se"], elbo_samples=elbo_src.n_samples,
        estimates=estimates, seed=seed,
    )


_FUNCTIONS = {"is": importance_sampling, "appendix-d": appendix_d, "ais": ais}


def _plain(i):
    return i.item() if hasattr(i, "item") else i
