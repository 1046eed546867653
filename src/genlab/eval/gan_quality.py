"""Sample quality of a trained generative model against real images held out from its training.

    from genlab.eval.gan_quality import evaluate_gan_quality
    q = evaluate_gan_quality("runs/dcgan-bitmoji-recipe-...", n=500)   # also RUN/eval/quality.json
    q["fd"], q["kid"], q["kid_se"], q["precision"], q["recall"], q["n_real"], q["n_fake"]

The real side is the run's held-out split (`data.holdout: N` keeps a fixed, seeded set of N images
out of training and validation; their ids go to RUN/eval/holdout.json), or, without one, its
validation split (never trained on either, but small). Both sides go through the same feature
extractor (`genlab.eval.features`): the pytorch-fid Inception network when its weights are found,
else the seeded fallback network calibrated on the held-out images, whose values are NOT
comparable to published FIDs (`comparable` says which). From those features:

- `fd`: the Fréchet distance (FID with the Inception weights), `genlab.eval.fid`;
- `kid`, `kid_std`, `kid_se`: KID (unbiased MMD^2, cubic kernel) over `kid_subsets` random subsets,
  its spread and the standard error of the mean (std / sqrt(subsets); the subsets overlap, so this
  understates the error somewhat);
- `precision`, `recall`: improved precision and recall, k = 3 (`genlab.eval.precision_recall`).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from genlab.defaults import FID, QUALITY
from genlab.errors import GenlabError
from genlab.eval.features import (
    FeatureExtractor,
    choose_extractor,
    fallback_extractor,
    features_from_tensors,
    inception_extractor,
)
from genlab.eval.fid import Stats, fid_from_stats
from genlab.eval.precision_recall import K, precision_recall
from genlab.io import atomic_write_json
from genlab.runs import Run

__all__ = ["QUALITY_KEYS", "real_images", "evaluate_gan_quality", "format_quality"]

QUALITY_KEYS = ("fd", "kid", "kid_se", "precision", "recall", "n_real", "n_fake", "extractor", "dims", "held_out")


def _ids(dataset: Any) -> list[str] | list[int]:
    """Relative file names of an image dataset's images, else their positions."""
    files = getattr(dataset, "files", None)
    index = getattr(dataset, "index", None)
    if files is not None and index is not None:
        from genlab.data.layouts import relative

        return [relative(f, index.root) for f in files]
    return list(range(len(dataset)))


def real_images(run: Run, n: int, seed: int = 0) -> tuple[torch.Tensor, dict[str, Any]]:
    """`n` (at most) real images in [0, 1] the run never trained on, with where they came from."""
    from genlab.data.registry import build_dataset

    cfg = run.config()
    split = "holdout" if cfg.data.holdout else "val"
    dataset = build_dataset(cfg.data, split, cfg.trainer.seed)
    if n > len(dataset):
        warnings.warn(f"{run.path}: asked for n={n} real images but the {split} split has {len(dataset)}; "
                      f"using {len(dataset)}", stacklevel=2)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    images = torch.stack([dataset[i][0] for i in order]).float()
    ids = _ids(dataset)
    info = {"split": split, "size": len(dataset), "ids": [ids[i] for i in order]}
    return images, info


def _fakes(model: torch.nn.Module, n: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    for start in range(0, n, batch_size):
        z = model.noise(min(batch_size, n - start), gen)
        with torch.no_grad():
            yield model.sample(z).float().clamp(0, 1)


def _extractor(run: Run, real: torch.Tensor, dims: int, batch_size: int) -> FeatureExtractor:
    fid = getattr(run.config().model, "fid", None)
    choice = fid.extractor if fid is not None else "auto"
    weights = fid.weights if fid is not None else None
    seed = fid.seed if fid is not None else 0
    if choose_extractor(choice, weights, "model.fid.extractor") == "inception":
        return inception_extractor(weights, dims)
    return fallback_extractor(real, seed=seed, dims=dims, batch_size=batch_size)


def evaluate_gan_quality(run_dir: str | Path, n: int = QUALITY["n"], seed: int = 0, which: str = "best",
                         extractor: FeatureExtractor | None = None, dims: int = FID["dims"], k: int = K,
                         kid_subsets: int = FID["kid_subsets"], kid_subset_size: int | None = None,
                         batch_size: int = FID["batch_size"],
                         device: str | torch.device = "cpu", write: bool = True,
                         model: torch.nn.Module | None = None) -> dict[str, Any]:
    """FD, KID (+ se), precision and recall of `n` samples of the run's `which` checkpoint (or of `model`,
    e.g. a GAN's raw generator beside its EMA copy) against `n` real images it never trained on (see the
    module docstring). Writes RUN/eval/quality.json (atomically) and RUN/eval/holdout.json (the real
    images' ids) unless `write=False`."""
    if n <= k + 1:
        raise GenlabError(f"quality evaluation needs n > {k + 1} images per side, got n={n}")
    run = Run.open(run_dir)
    real, info = real_images(run, n, seed)
    n_real = len(real)
    if n_real <= k + 1:
        raise GenlabError(f"{run.path}: only {n_real} real images in the {info['split']} split; "
                          "set data.holdout=N (e.g. 500) and train again")
    if model is None:
        model = run.load_model(which, device)
    if not hasattr(model, "sample"):
        raise GenlabError(f"{run.path}: the {run.config().model.name} model does not sample images")
    if extractor is None:
        extractor = _extractor(run, real, dims, batch_size)
    real_f = features_from_tensors(extractor, real, batch_size)
    fake_f = features_from_tensors(extractor, _fakes(model, n, seed, batch_size), batch_size, n)
    result = fid_from_stats(Stats.from_features(real_f, extractor), Stats.from_features(fake_f, extractor),
                            extractor.dims, extractor, kid_subset_size, kid_subsets)
    pr = precision_recall(real_f, fake_f, k)
    out: dict[str, Any] = {
        "fd": result.value,
        "kid": result.kid_mean,
        "kid_se": result.kid_std / math.sqrt(kid_subsets) if result.kid_std is not None else None,
        "precision": pr.precision,
        "recall": pr.recall,
        "n_real": n_real,
        "n_fake": len(fake_f),
        "extractor": extractor.label,
        "dims": extractor.dims,
        "held_out": True,
        "real_split": info["split"],
        "held_out_images": info["size"],
        "k": k,
        "kid_std": result.kid_std,
        "kid_subset_size": result.kid_subset_size,
        "kid_subsets": kid_subsets,
        "extractor_id": extractor.id,
        "comparable_to_published_fid": extractor.comparable,
        "checkpoint": run.checkpoint(which).name,
        "seed": seed,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if not extractor.comparable:
        out["note"] = "fallback feature extractor: FD/KID are NOT comparable to published FIDs"
    if write:
        atomic_write_json(run.eval / "holdout.json", {"split": info["split"], "n_used": n_real,
                                                      "size": info["size"], "ids": info["ids"]})
        atomic_write_json(run.eval / "quality.json", out)
    return out



def format_quality(q: dict[str, Any]) -> str:
    """Lines for the terminal: the four numbers with N and the extractor."""
    lines = [f"features: {q['extractor']} [{q['dims']}-d]",
             f"N: {q['n_fake']} generated vs {q['n_real']} real images never trained on ({q['real_split']} split)"]
    if not q.get("comparable_to_published_fid", False):
        lines.append("WARNING: fallback feature extractor, FD/KID NOT comparable to published FID values")
    kid = "n/a" if q["kid"] is None else f"{q['kid']:.5g} ± {q['kid_se']:.2g} (se, subsets of {q['kid_subset_size']})"
    lines += [f"FD:        {q['fd']:.4g}", f"KID:       {kid}",
              f"precision: {q['precision']:.3f} (k = {q['k']})", f"recall:    {q['recall']:.3f} (k = {q['k']})"]
    return "\n".join(lines)
