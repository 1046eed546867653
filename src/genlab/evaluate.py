"""`genlab evaluate`: held-out images from a run's own data, scored by the likelihood estimators."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

from genlab.data.registry import build_dataset
from genlab.defaults import ESTIMATORS
from genlab.errors import GenlabError
from genlab.runs import Run

LIKELIHOOD_CONTRACT = ("encode", "log_prior", "log_likelihood", "likelihood")  # what the estimators use


def pick_images(run: Run, n_images: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    """`n_images` random validation images (fixed seed) and their dataset indices."""
    cfg = run.config()
    val = build_dataset(cfg.data, "val", cfg.trainer.seed)
    if n_images > len(val):
        raise GenlabError(f"--n-images {n_images} is more than the {len(val)} validation images")
    ids = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))[:n_images].tolist()
    return torch.stack([val[i][0] for i in ids]), ids


def evaluate_loglik(run_dir: str | Path, n_images: int | None = None, samples: int | None = None,
                    estimators: list[str] | None = None, seed: int = 0, which: str = "best",
                    console: Console | None = None, device: str = "cpu", proposal: str | None = None,
                    bdmc: int = 0) -> Path:
    """Score held-out images and keep the table: RUN/eval/loglik-<timestamp>.json (+ the scored
    pixels as loglik_images-<timestamp>.npy), with loglik.json / loglik_images.npy the latest.
    With `bdmc` = N > 0, also bracket log p(x) on N images simulated from the model (eval/bdmc.json)."""
    from genlab.eval.likelihood import loglik_table, save_evaluation

    run = Run.open(run_dir)
    cfg = run.config()
    if not hasattr(cfg.model, "latent_dim"):
        raise GenlabError(f"{run.path}: log-likelihood needs a VAE-like model, this run is {cfg.model.name!r}")
    estimators = list(estimators or cfg.eval.estimators)
    if "all" in estimators:
        estimators = list(ESTIMATORS)
    for name, value in (("n_images", n_images), ("samples", samples)):
        if value is not None and value < 1:  # 0 must not mean "the default", nor -3 "all but three"
            raise GenlabError(f"{name}={value}: must be at least 1 (None = the run config's eval.{name})")
    n_images = n_images or cfg.eval.n_images
    samples = samples or cfg.eval.samples
    model = run.load_model(which, device)
    if not all(hasattr(model, a) for a in LIKELIHOOD_CONTRACT):  # the GANs have a latent_dim but no likelihood
        raise GenlabError(f"{run.path}: log-likelihood needs a VAE-like model, this run is {cfg.model.name!r}")
    images, ids = pick_images(run, n_images, seed)
    is_options = {"proposal": proposal} if proposal else {}
    estimators = tuple(dict.fromkeys(estimators))
    table = loglik_table(model, images.to(device), ids, estimators=estimators, samples=samples, seed=seed,
                         is_=is_options, appendix_d=dict(cfg.eval.appendix_d), ais=dict(cfg.eval.ais))
    settings = {"run": str(run.path), "checkpoint": which, "n_images": n_images, "samples": samples,
                "estimators": list(estimators), "seed": seed, "device": str(device), "split": "val",
                "image_selection": f"torch.randperm(len(val), generator seeded {seed})[:{n_images}]",
                "is": is_options, "appendix_d": dict(cfg.eval.appendix_d), "ais": dict(cfg.eval.ais)}
    out = save_evaluation(table, run.eval, images, settings)
    if console is not None:
        # every estimator side by side needs ~170 columns; a narrower console would squash the numbers
        console.print(table.rich_table(), width=max(console.width, 180))
        console.print(f"saved {run.eval / table.provenance['table_file']} (latest: {out}; "
                      f"scored pixels: {table.provenance['images_file']})")
    if bdmc:
        evaluate_bdmc(run, model, int(bdmc), seed, {"check": False, **dict(cfg.eval.ais)}, console, device)
    return out


def evaluate_bdmc(run: Run, model, n_images: int, seed: int, ais_options: dict, console: Console | None,
                  device: str = "cpu") -> Path:
    """BDMC (Grosse et al. 2016) on `n_images` simulated from the model: forward AIS (lower bound)
    and reverse AIS from the exact latent (upper bound); the bracket width bounds AIS's error at
    these settings on data like the model's own. Kept like the log-likelihood tables (bdmc-<ts>.json)."""
    import time

    import numpy as np

    from genlab.eval.ais import bdmc, simulate
    from genlab.eval.likelihood import bdmc_table
    from genlab.io import atomic_write_json

    x, z = simulate(model, n_images, seed=seed, device=device)
    result = bdmc(model, x, z, seed=seed, **ais_options)
    data = bdmc_table(result, list(range(n_images)))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = run.eval / f"bdmc-{stamp}.json"
    atomic_write_json(path, data)
    atomic_write_json(run.eval / "bdmc.json", data)
    if console is not None:
        gap = np.asarray(result.gap)
        console.print(f"BDMC on {n_images} simulated images: bracket width (upper - lower) mean {gap.mean():.2f}, "
                      f"max {gap.max():.2f} nats; saved {path}")
    return path
