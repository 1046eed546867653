"""Do a model's samples look like dSprites? Each sample, binarised at 0.5, is matched to the most
similar of all 737,280 rendered sprites by intersection over union (IoU).

- `best_iou(images, sprites)`: for every image, the best IoU over a set of sprites and the index
  of that sprite (exact: a chunked float32 matrix product of 0/1 pixels counts the intersections).
- `sprite_quality(run_dir, n, seed)`: `n` seeded samples of a trained run, scored against the whole
  rendered set (`genlab.data.dsprites.load_all`, built once), written to RUN/eval/sprite_quality.json.
  An empty sample (no pixel on) has IoU 0 with every sprite and counts as 0 in the mean.
- Beside the mean best IoU (which a round blob reaches at ~0.8 against a rotated square): the share of
  squares, ellipses and hearts among the best matches (`shape_shares`) and the share of crisp
  matches, IoU >= `CRISP_IOU` (0.9).

Which prior the samples come from: `prior="auto"` takes the run's aggregate-posterior mixture
(`genlab.eval.aggregate_prior`) when one was fitted or the run's config asks for one
(`model.sample_prior: aggregate-gmm`: it is then fitted first), else N(0, I); the N(0, I) figure
is always reported as well (`standard` in the result).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from genlab.data import dsprites
from genlab.io import atomic_path, atomic_write_json
from genlab.runs import Run

THRESHOLD = 0.5
CRISP_IOU = 0.9  # a sample this close to one sprite is that sprite, corners and all
PRIORS = ("auto", "standard", "aggregate-gmm")


def binarise(images: torch.Tensor | np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Images (N, [1,] H, W) in [0, 1] -> bool (N, H, W): a pixel is on when above `threshold`."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ValueError(f"sprite images have one channel, got shape {a.shape}")
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"expected images (N, [1,] H, W), got shape {a.shape}")
    return a > threshold


def best_iou(images: np.ndarray, sprites: np.ndarray, packed: bool = True, chunk: int = 16384,
             progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU of each binary image (N, H, W) over `sprites` and the index of the best sprite.

    `sprites`: (M, H, W/8) bit-packed rows (`packed=True`, the cache's layout) or (M, H, W) 0/1.
    Ties go to the lowest index. An empty image scores 0. `progress(done, total)` after each chunk."""
    a = np.asarray(images).astype(bool)
    n = len(a)
    flat = torch.from_numpy(a.reshape(n, -1).astype(np.float32))
    a_sum = flat.sum(1).double()
    best = torch.full((n,), -1.0, dtype=torch.float64)
    where = torch.zeros(n, dtype=torch.int64)
    total = len(sprites)
    for start in range(0, total, chunk):
        block = np.asarray(sprites[start:start + chunk])
        if packed:
            block = np.unpackbits(block, axis=-1)
        b = torch.from_numpy(block.reshape(len(block), -1).astype(np.float32))
        if b.shape[1] != flat.shape[1]:
            raise ValueError(f"images have {flat.shape[1]} pixels, sprites {b.shape[1]}")
        inter = (flat @ b.T).double()  # exact: sums of 0/1 products stay far below 2^24
        union = a_sum[:, None] + b.sum(1).double()[None] - inter
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))
        value, idx = iou.max(1)  # first maximum within the chunk
        better = value > best  # strictly: an earlier chunk keeps its tie
        best = torch.where(better, value, best)
        where = torch.where(better, idx + start, where)
        if progress is not None:
            progress(min(start + chunk, total), total)
    return best.numpy(), where.numpy()


def shape_shares(match: np.ndarray, on: np.ndarray) -> dict[str, float | None]:
    """The share of squares, ellipses and hearts among the best-matching sprites of the non-empty
    samples (an empty sample matches nothing: its tie-broken 'match' would be a square); None when
    every sample is empty."""
    shapes = dsprites.index_to_classes(match[on > 0])[:, dsprites.LATENT_NAMES.index("shape")]
    counts = np.bincount(shapes, minlength=len(dsprites.SHAPE_NAMES))
    return {name: (float(c / counts.sum()) if counts.sum() else None) for name, c in zip(dsprites.SHAPE_NAMES, counts)}


def _summary(iou: np.ndarray, on: np.ndarray, match: np.ndarray) -> dict[str, Any]:
    # a round blob matches some sprite (most often a rotated square) at ~0.8: the mean alone cannot
    # tell blobs from sprites, so the shapes matched and the share of crisp matches go beside it
    return {"mean_iou": float(iou.mean()), "median_iou": float(np.median(iou)),
            "empty_fraction": float((on == 0).mean()),
            "fraction_iou_at_least_0.75": float((iou >= 0.75).mean()),
            "crisp_fraction": float((iou >= CRISP_IOU).mean()),
            "shapes": shape_shares(match, on)}


@torch.no_grad()
def prior_samples(run: Run, model: torch.nn.Module, n: int, seed: int, prior: str) -> tuple[torch.Tensor, str]:
    """`n` images in [0, 1] from the run's model and the named prior (`PRIORS`); the prior used."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    from genlab.eval.aggregate_prior import load_aggregate_prior, prior_path

    if prior == "auto":
        prior = "aggregate-gmm" if prior_path(run).is_file() else "standard"
    g = torch.Generator().manual_seed(seed)
    if prior == "standard":
        z = model.noise(n, g)
    else:
        z = load_aggregate_prior(run).sample(n, g).to(next(model.parameters()).device)
    return model.sample(z), prior


def sprite_quality(run_dir: str | Path, n: int = 100, seed: int = 0, prior: str = "auto",
                   grid: str | Path | None = None, console: Any = None) -> dict[str, Any]:
    """Mean best IoU and the empty fraction of `n` seeded samples of a trained run against every
    rendered dSprites sprite; writes RUN/eval/sprite_quality.json (atomically) and returns it.

    Keys: mean_iou, empty_fraction, n, prior (the prior sampled: "standard" = N(0, I) or
    "aggregate-gmm"), seed, median_iou, fraction_iou_at_least_0.75, crisp_fraction (IoU >=
    `CRISP_IOU`), shapes (share of square / ellipse / heart among the non-empty samples' best
    matches), crisp_iou, standard (the same figures
    for N(0, I) samples when `prior` was another one), samples_file (RUN/eval/sprite_quality.npz:
    per-sample `iou` and `match`, the official index of each best sprite, per prior), grid (a PNG of
    the binarised samples above their best-matching sprites, when `grid` is given)."""
    from genlab.eval.aggregate_prior import ensure_aggregate_prior

    run = Run.open(run_dir)
    if prior == "auto":
        ensure_aggregate_prior(run.path)  # a run whose config samples from one, fitted once
    model = run.load_model("best")
    sprites = dsprites.load_all()
    figures: dict[str, dict[str, Any]] = {}
    arrays: dict[str, np.ndarray] = {}
    binaries: dict[str, np.ndarray] = {}
    for which in [prior] if prior == "standard" else [prior, "standard"]:
        images, used = prior_samples(run, model, n, seed, which)
        binaries.setdefault(used, binarise(images))
    # one pass over the rendered set for every prior's samples
    iou_all, match_all = _search(np.concatenate(list(binaries.values())), sprites, console, ", ".join(binaries))
    for k, (used, binary) in enumerate(binaries.items()):
        iou, match = iou_all[k * n:(k + 1) * n], match_all[k * n:(k + 1) * n]
        figures[used] = _summary(iou, binary.reshape(n, -1).sum(1), match)
        arrays.update({f"{used}_iou": iou, f"{used}_match": match})
    pairs = next(iter(binaries.values())), arrays[f"{next(iter(binaries))}_match"]
    main = next(iter(figures))
    samples_file = run.eval / "sprite_quality.npz"
    with atomic_path(samples_file) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    result: dict[str, Any] = {"mean_iou": figures[main]["mean_iou"], "empty_fraction": figures[main]["empty_fraction"],
                              "n": n, "prior": main, **figures[main], "seed": seed, "threshold": THRESHOLD,
                              "crisp_iou": CRISP_IOU,
                              "sprites": dsprites.N_IMAGES, "renderer_version": dsprites.RENDERER_VERSION}
    if "standard" in figures and main != "standard":
        result["standard"] = figures["standard"]
    result["samples_file"] = samples_file.name
    if grid is not None:
        result["grid"] = str(save_matches(pairs[0], sprites, pairs[1], grid))
    atomic_write_json(run.eval / "sprite_quality.json", result)
    return result


def _search(binary: np.ndarray, sprites: np.ndarray, console: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    if console is None:
        return best_iou(binary, sprites)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"best IoU over all sprites ({label} prior samples)", total=len(sprites))
        return best_iou(binary, sprites, progress=lambda done, total: bar.update(task, completed=done))


def save_matches(binary: np.ndarray, sprites: np.ndarray, match: np.ndarray, path: str | Path,
                 per_row: int = 10) -> Path:
    """A grid: each row of binarised samples above the row of their best-matching sprites."""
    from genlab.viz.grids import originals_over_reconstructions, save_grid

    x = torch.from_numpy(binary.astype(np.float32))[:, None]
    found = dsprites.unpack(np.asarray(sprites[np.sort(match)]))  # memmap reads want sorted rows
    order = np.argsort(np.argsort(match))
    y = torch.from_numpy(found[order].astype(np.float32))[:, None]
    return save_grid(originals_over_reconstructions(x, y, per_row), path, nrow=per_row)
