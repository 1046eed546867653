"""Two GAN scores that need no pretrained network: pixel diversity and coverage on held-out faces.

    from genlab.eval.pixel_scores import evaluate_pixel_scores
    s = evaluate_pixel_scores("runs/dcgan-bitmoji-...", n=500)   # also RUN/eval/pixel_scores.json
    s["diversity"], s["coverage"], s["real_coverage"]

Both compare images as vectors of pixels, after an area resize to `SIZE` x `SIZE` (so small shifts
and JPEG noise weigh little), against real images the run never trained on (its held-out split,
else its validation split; the same images as `genlab.eval.gan_quality`):

- `diversity(fake, real)`: the mean pairwise L2 distance among the samples over the same among the
  real images. Identical samples score 0; samples as spread as the real faces score ~1. A GAN that
  draws one face in many colours can still score high: read it with coverage.
- `coverage(fake, real)`: the share of real images whose nearest sample is nearer than their nearest
  *other* real image. Samples that are the real images score 1; near-copies of a few faces cover
  only the real faces next to them, ~0. Independent real faces score ~0.5 against each other
  (`real_coverage`: the held-out set split in two halves, one covering the other).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.io import atomic_write_json
from genlab.runs import Run

__all__ = ["SIZE", "N_SAMPLES", "flatten", "diversity", "coverage", "model_scores", "evaluate_pixel_scores",
           "format_pixel_scores"]

SIZE = 32          # both scores compare images at 32x32 pixels
N_SAMPLES = 500    # samples and real images per run (the protocol)
EXACT = "donot_use_mm_for_euclid_dist"  # cdist without the |a|^2 + |b|^2 - 2ab shortcut: copies are at 0


def flatten(images: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, C * size * size) float64, area-resized (a no-op at `size`)."""
    x = images.detach().double()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.flatten(1)


def _mean_pairwise(x: torch.Tensor) -> float:
    n = len(x)
    if n < 2:
        raise ValueError("the mean pairwise distance needs at least 2 images")
    return float(torch.cdist(x, x, compute_mode=EXACT).sum() / (n * (n - 1)))  # the zero diagonal left out of the mean


def diversity(fake: torch.Tensor, real: torch.Tensor, size: int = SIZE) -> float:
    """Mean pairwise L2 distance among `fake` over the same among `real` (images in [0, 1])."""
    spread = _mean_pairwise(flatten(real, size))
    if spread == 0:
        raise ValueError("the real images are all identical: diversity is undefined")
    return _mean_pairwise(flatten(fake, size)) / spread


def coverage(fake: torch.Tensor, real: torch.Tensor, size: int = SIZE) -> float:
    """Share of `real` images whose nearest `fake` is strictly nearer than their nearest other real."""
    r, f = flatten(real, size), flatten(fake, size)
    if len(r) < 2:
        raise ValueError("coverage needs at least 2 real images")
    rr = torch.cdist(r, r, compute_mode=EXACT)
    rr.fill_diagonal_(float("inf"))
    nearest_real = rr.min(1).values
    nearest_fake = torch.cdist(r, f, compute_mode=EXACT).min(1).values
    return float((nearest_fake < nearest_real).double().mean())


@torch.no_grad()
def _samples(model: torch.nn.Module, n: int, seed: int, batch_size: int = 100) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)  # the noise of genlab.eval.gan_quality's samples
    weight = next(iter(model.parameters()), None)  # the noise goes where the model is (a copycat has none)
    device = weight.device if weight is not None else torch.device("cpu")
    parts = [model.sample(model.noise(min(batch_size, n - s), gen).to(device)).float().clamp(0, 1).cpu()
             for s in range(0, n, batch_size)]
    return torch.cat(parts)


def model_scores(model: torch.nn.Module, real: torch.Tensor, n: int = N_SAMPLES, seed: int = 0) -> dict[str, float]:
    """Diversity and coverage of `n` seeded samples of `model` (as it is: call .eval() first) against `real`."""
    fake = _samples(model, n, seed)
    return {"diversity": diversity(fake, real), "coverage": coverage(fake, real)}


def evaluate_pixel_scores(run_dir: str | Path, n: int = N_SAMPLES, seed: int = 0, which: str = "best",
                          write: bool = True, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Diversity and coverage of `n` seeded samples of the run's `which` checkpoint (or of `model`)
    against `n` (at most) real images it never trained on; writes RUN/eval/pixel_scores.json."""
    from genlab.eval.gan_quality import real_images

    if n < 2:
        raise GenlabError(f"pixel scores need n >= 2 images per side, got n={n}")
    run = Run.open(run_dir)
    real, info = real_images(run, n, seed)
    if len(real) < 4:
        raise GenlabError(f"{run.path}: only {len(real)} real images in the {info['split']} split; "
                          "set data.holdout=N (e.g. 500) and train again")
    given = model is not None
    if model is None:
        model = run.load_model(which)
    if not hasattr(model, "sample"):
        raise GenlabError(f"{run.path}: the {run.config().model.name} model does not sample images")
    half = len(real) // 2
    out: dict[str, Any] = {
        **model_scores(model, real, n, seed),
        # the same figures for real faces: one half of the held-out set against the other
        "real_diversity": diversity(real[:half], real[half:]),
        "real_coverage": coverage(real[:half], real[half:]),
        "n_fake": n, "n_real": len(real), "size": SIZE, "real_split": info["split"],
        "checkpoint": None if given else run.checkpoint(which).name, "seed": seed,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if write:
        atomic_write_json(run.eval / "pixel_scores.json", out)
    return out


def format_pixel_scores(s: dict[str, Any]) -> str:
    """Lines for the terminal: the two scores with the real faces' own figures beside them."""
    return "\n".join([
        f"pixel diversity: {s['diversity']:.3f} (held-out real faces: {s['real_diversity']:.3f}; "
        f"{s['n_fake']} samples vs {s['n_real']} real, {s['size']}x{s['size']} px)",
        f"coverage:        {s['coverage']:.3f} (held-out real faces: {s['real_coverage']:.3f}; share of real "
        "images whose nearest sample is nearer than their nearest other real image)"])
