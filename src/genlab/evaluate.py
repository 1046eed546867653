"""`genlab evaluate`: held-out images from a run's own data, scored by the likelihood estimators."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

from genlab.data.registry import build_dataset
from genlab.errors import GenlabError
from genlab.runs import Run

ALL_ESTIMATORS = ("is", "appendix-d", "ais")


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
                    console: Console | None = None, device: str = "cpu") -> Path:
    from genlab.eval.likelihood import loglik_table

    run = Run.open(run_dir)
    cfg = run.config()
    if not hasattr(cfg.model, "latent_dim") or cfg.model.name != "vae":
        raise GenlabError(f"{run.path}: log-likelihood needs a VAE-like model, this run is {cfg.model.name!r}")
    estimators = list(estimators or cfg.eval.estimators)
    if "all" in estimators:
        estimators = list(ALL_ESTIMATORS)
    n_images = n_images or cfg.eval.n_images
    samples = samples or cfg.eval.samples
    model = run.load_model(which, device)
    images, ids = pick_images(run, n_images, seed)
    table = loglik_table(model, images.to(device), ids, estimators=tuple(dict.fromkeys(estimators)),
                         samples=samples, seed=seed, appendix_d=dict(cfg.eval.appendix_d), ais=dict(cfg.eval.ais))
    out = run.eval / "loglik.json"
    table.save(out)
    if console is not None:
        # every estimator side by side needs ~170 columns; a narrower console would squash the numbers
        console.print(table.rich_table(), width=max(console.width, 180))
        console.print(f"saved {out}")
    return out
