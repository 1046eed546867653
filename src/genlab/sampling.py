"""Sampling from a trained run."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.defaults import SAMPLE
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.viz.grids import save_grid


@torch.no_grad()
def sample_grid(run_dir: str | Path, n: int = SAMPLE["n"], out: str | Path | None = None, seed: int = SAMPLE["seed"],
                which: str = SAMPLE["which"], device: str = "cpu") -> Path:
    """Draw `n` samples with a seeded generator and save them as a grid (10 per row)."""
    if n < 1:
        raise GenlabError(f"n={n}: a sample grid needs at least 1 image")
    run = Run.open(run_dir)
    model = run.load_model(which, device)
    images = model.sample(model.noise(n, torch.Generator().manual_seed(seed)))
    out = Path(out) if out else run.samples / "sample_grid.png"
    return save_grid(images, out, nrow=min(10, n))
