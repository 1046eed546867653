"""Fréchet Inception Distance (and KID) computed like `python -m pytorch_fid`.

Typical uses::

    # the CLI / a drop-in for `python -m pytorch_fid A B`
    result = fid_between("real_pngs/", "fake_pngs/", weights="pt_inception-2015-12-05-6726825d.pth")

    # a training loop: real statistics computed once (cached on disk), then one call per epoch
    fid = FIDEvaluator.for_dataset(real_loader, dataset_id="bitmoji-64", n=1000, weights=cfg_weights)
    result = fid(generated_images)          # result.value, result.kid_mean, result.n_b, ...

Every value travels with N on each side, the feature dims and the extractor used, and the
fallback extractor (no weights file) is labelled NOT comparable to published FIDs.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from genlab.defaults import FID
from genlab.errors import GenlabError
from genlab.eval.features import (
    FeatureExtractor,
    fallback_extractor,
    features_from_folder,
    features_from_tensors,
    folder_digest,
    inception_extractor,
    iter_folder,
    list_images,
    take_images,
)
from genlab.eval.kid import default_subset_size, kid
from genlab.io import atomic_path, cache_dir

__all__ = [
    "frechet_distance", "Stats", "FIDResult", "stats_cache_key", "cached_stats", "folder_stats", "fid_from_stats",
    "fid_between", "fid_cli", "format_result", "FIDEvaluator",
]

CACHE_VERSION = 1  # bump when anything that changes cached statistics changes


# ----------------------------------------------------------------------------- the distance

def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)) in float64: pytorch-fid's value, computed faster.

    Tr(sqrt(S1 S2)) is the sum of the square roots of the eigenvalues of S1 S2, which are those of
    the symmetric positive semidefinite sqrt(S1) S2 sqrt(S1): two symmetric eigendecompositions,
    eigenvalues clamped at 0 against round-off (the eigenvalue route of torch-fidelity and
    torchmetrics), instead of `scipy.linalg.sqrtm`'s Schur iteration. No matrix square root of a
    non-symmetric product is formed, so singular covariances (fewer images than feature dims) need
    no regularisation and give no complex parts. `eps` is added to both diagonals (with a warning)
    only if an eigendecomposition fails to converge.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise GenlabError(f"FID statistics have different dims ({mu1.shape[0]} vs {mu2.shape[0]}); "
                          "compute both sides with the same --dims")
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        raise GenlabError("FID statistics contain NaN or inf (features of diverged images?)")
    diff = mu1 - mu2
    try:
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    except np.linalg.LinAlgError:
        warnings.warn(f"FID: eigendecomposition did not converge; adding {eps} to the diagonals",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        tr_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(S1 S2)) for symmetric PSD S1, S2, in float64.

    With S1 = V diag(w) V^T, the eigenvalues of S1 S2 are those of B^T S2 B, B = V diag(sqrt(w)),
    for the w > 0 (clamped: negative ones are round-off). Eigenvalues of B^T S2 B below
    size * eps * max are round-off in the null space of a singular product and are dropped
    rather than clamped: their square roots (~1e-8 of the largest each) would otherwise add up.
    """
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    keep = w > 0
    b = v[:, keep] * np.sqrt(w[keep])
    m = b.T @ sigma2 @ b
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    if lam.size == 0:
        return 0.0
    tol = lam.size * np.finfo(np.float64).eps * max(float(lam.max()), 0.0)
    return float(np.sqrt(lam[lam > tol]).sum())


# ----------------------------------------------------------------------------- statistics files

@dataclass
class Stats:
    """mu/sigma of a feature set, plus the features themselves (for KID) when known.

    Saved as `.npz` with `mu` and `sigma` like pytorch-fid, so files go both ways; genlab adds
    `features`, `n`, `extractor_id` and `extractor_label`.
    """

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray | None = None
    n: int | None = None
    extractor_id: str | None = None
    extractor_label: str | None = None

    @classmethod
    def from_features(cls, features: np.ndarray, extractor: FeatureExtractor | None = None) -> "Stats":
        acts = np.asarray(features, dtype=np.float64)  # pytorch-fid keeps activations in float64
        if len(acts) < 2:
            raise GenlabError(f"FID needs at least 2 images per side, got {len(acts)}")
        return cls(mu=np.mean(acts, axis=0), sigma=np.cov(acts, rowvar=False),
                   features=np.asarray(features, dtype=np.float32), n=len(acts),
                   extractor_id=extractor.id if extractor else None,
                   extractor_label=extractor.label if extractor else None)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        arrays = {"mu": self.mu, "sigma": self.sigma}
        if self.features is not None:
            arrays["features"] = self.features
        for key in ("n", "extractor_id", "extractor_label"):
            if getattr(self, key) is not None:
                arrays[key] = np.asarray(getattr(self, key))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Stats":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                mu, sigma = f["mu"][:], f["sigma"][:]
                extra = {k: f[k] for k in ("features", "n", "extractor_id", "extractor_label") if k in f}
        except FileNotFoundError:
            raise GenlabError(f"FID statistics file not found: {path}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise GenlabError(f"{path} is not an FID statistics file with 'mu' and 'sigma' ({exc}); "
                              "recreate it (e.g. `python -m pytorch_fid --save-stats FOLDER FILE.npz`)") from None
        feats = extra.get("features")
        n = int(extra["n"]) if "n" in extra else (len(feats) if feats is not None else None)
        return cls(mu=mu, sigma=sigma, features=feats, n=n,
                   extractor_id=str(extra["extractor_id"]) if "extractor_id" in extra else None,
                   extractor_label=str(extra["extractor_label"]) if "extractor_label" in extra else None)


# ----------------------------------------------------------------------------- cache

def stats_cache_key(dataset_id: str, transform: str, n: int, extractor: FeatureExtractor) -> str:
    """Hash of everything that changes real statistics; the extractor id holds dims and weights hash."""
    spec = {"version": CACHE_VERSION, "dataset": dataset_id, "transform": transform, "n": n,
            "dims": extractor.dims, "extractor": extractor.id}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def cached_stats(extractor: FeatureExtractor, images: torch.Tensor | Iterable | Callable[[], Iterable],
                 dataset_id: str, n: int, transform: str = "", batch_size: int = FID["batch_size"],
                 cache: bool = True, *, description: str | None = None) -> Stats:
    """Statistics of the first `n` images, computed once per (dataset, transform, n, extractor).

    `images` may be a callable returning them, so that a cache hit never touches the data.
    `dataset_id` and `transform` are the caller's promise that the same strings mean the same
    images; change either when the data changes. `description` labels the progress bar.
    """
    path = cache_dir("fid") / f"{dataset_id_slug(dataset_id)}-{stats_cache_key(dataset_id, transform, n, extractor)[:24]}.npz"
    if cache and path.exists():
        try:
            stats = Stats.load(path)
            if stats.n == n and stats.extractor_id == extractor.id and stats.features is not None:
                return stats
        except GenlabError:
            pass  # a damaged cache file is recomputed, not fatal
    feats = features_from_tensors(extractor, images() if callable(images) else images, batch_size, limit=n,
                                  description=description or f"FID features of {n} real images")
    if len(feats) < n:
        raise GenlabError(f"dataset '{dataset_id}' gave only {len(feats)} images but FID was asked for "
                          f"n={n}; lower n or provide more images")
    stats = Stats.from_features(feats, extractor)
    if cache:
        stats.save(path)
    return stats


def dataset_id_slug(dataset_id: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_id)[:40]
    return slug or "dataset"


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class FIDResult:
    """One FID value and everything needed to read it: N per side, dims, the extractor."""

    value: float
    n_a: int | None
    n_b: int | None
    dims: int
    extractor: str            # human label, e.g. "pytorch-fid Inception-v3 (pt_inception-...pth, ...)"
    extractor_id: str | None  # exact id (weights hash / fallback seed + calibration set)
    comparable: bool          # False for the fallback extractor: not comparable to published FIDs
    kid_mean: float | None = None
    kid_std: float | None = None
    kid_subset_size: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def fid_from_stats(a: Stats, b: Stats, dims: int | None = None, extractor: FeatureExtractor | None = None,
                   kid_subset_size: int | None = None, kid_subsets: int = FID["kid_subsets"]) -> FIDResult:
    """FID (and KID when both sides carry features) between two statistics."""
    value = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    kid_mean = kid_std = subset = None
    if a.features is not None and b.features is not None:
        subset = kid_subset_size or default_subset_size(len(a.features), len(b.features))
        kid_mean, kid_std = kid(a.features, b.features, subset, kid_subsets)
    label = extractor.label if extractor else (a.extractor_label or b.extractor_label or "unknown (pytorch-fid .npz statistics)")
    ident = extractor.id if extractor else (a.extractor_id or b.extractor_id)
    comparable = extractor.comparable if extractor else not any(
        (s.extractor_id or "").startswith("fallback") for s in (a, b))
    return FIDResult(value, a.n, b.n, dims or len(a.mu), label, ident, comparable, kid_mean, kid_std,
                     subset if kid_mean is not None else None)


def _is_stats_file(path: str | os.PathLike) -> bool:
    return str(path).endswith(".npz")


def folder_stats(extractor: FeatureExtractor, folder: str | os.PathLike, batch_size: int = FID["batch_size"],
                 cache: bool = True) -> Stats:
    """Statistics of every image in a folder (read like pytorch-fid reads it), cached on disk by the
    folder's content (names and bytes of its images) and the extractor: a second `genlab fid` on the
    same real folder skips its Inception pass."""
    if not cache:
        return Stats.from_features(features_from_folder(extractor, folder, batch_size), extractor)
    digest, n = folder_digest(folder)
    name = Path(folder).resolve().name or "folder"
    return cached_stats(extractor, lambda: iter_folder(folder, batch_size), f"folder:{name}:{digest[:32]}", n,
                        transform="pytorch-fid-folder", batch_size=batch_size, cache=True,
                        description=f"FID features of {name}")


def _stats_of_path(path: str | os.PathLike, extractor: FeatureExtractor | None, batch_size: int,
                   cache: bool = True) -> Stats:
    if _is_stats_file(path):
        stats = Stats.load(path)
        if extractor is not None:
            if stats.mu.shape[0] != extractor.dims:
                raise GenlabError(f"{path} holds {stats.mu.shape[0]}-d statistics but FID was asked for "
                                  f"--dims {extractor.dims}; pass --dims {stats.mu.shape[0]} or recompute the file")
            if stats.extractor_id is not None and stats.extractor_id != extractor.id:
                raise GenlabError(f"{path} was computed with another feature extractor ({stats.extractor_id}, "
                                  f"now {extractor.id}); recompute it with the same weights")
        return stats
    if not os.path.exists(path):
        raise GenlabError(f"FID input not found: {path}; pass a folder of images or a .npz statistics file")
    assert extractor is not None
    return folder_stats(extractor, path, batch_size, cache)


def fid_between(path_a: str | os.PathLike, path_b: str | os.PathLike, weights: str | os.PathLike | None = None,
                dims: int = FID["dims"], batch_size: int = FID["batch_size"], device: str | torch.device | None = None,
                extractor: FeatureExtractor | None = None, kid_subset_size: int | None = None,
                kid_subsets: int = FID["kid_subsets"], cache: bool = True) -> FIDResult:
    """FID between two image folders or `.npz` statistics files, like `python -m pytorch_fid A B`.

    The Inception weights are only needed (and only loaded) when a side is an image folder.
    KID is added when both sides are folders (or genlab `.npz` files that keep features).
    A folder's statistics are cached by its content (`folder_stats`; `cache=False` recomputes).
    """
    needs_net = not (_is_stats_file(path_a) and _is_stats_file(path_b))
    if extractor is None and needs_net:
        extractor = inception_extractor(weights, dims, device)
    a = _stats_of_path(path_a, extractor, batch_size, cache)
    b = _stats_of_path(path_b, extractor, batch_size, cache)
    if extractor is None and a.extractor_id and b.extractor_id and a.extractor_id != b.extractor_id:
        raise GenlabError(f"{path_a} and {path_b} were computed with different feature extractors "
                          f"({a.extractor_id} vs {b.extractor_id}); recompute one of them")
    return fid_from_stats(a, b, extractor.dims if extractor else None, extractor, kid_subset_size, kid_subsets)


def fid_cli(path_a: str | os.PathLike, path_b: str | os.PathLike, weights: str | os.PathLike | None = None,
            dims: int = FID["dims"], batch_size: int = FID["batch_size"], device: str | torch.device | None = None,
            fallback: bool = False, seed: int = FID["seed"], cache: bool = True) -> FIDResult:
    """What `genlab fid A B [--weights FILE] [--dims D] [--batch-size N] [--fallback]` runs.

    `fallback=True` uses the He-initialised network calibrated on the first image folder given
    (path_a unless it is a .npz file); its value is NOT comparable to published FIDs.
    """
    extractor = None
    if fallback:
        folders = [p for p in (path_a, path_b) if not _is_stats_file(p)]
        if not folders:
            raise GenlabError("--fallback needs at least one image folder to calibrate on; "
                              f"{path_a} and {path_b} are both .npz files")
        list_images(folders[0])  # a clear error for a missing/empty folder before any work
        extractor = fallback_extractor(folders[0], seed=seed, dims=dims, device=device, batch_size=batch_size)
    return fid_between(path_a, path_b, weights, dims, batch_size, device, extractor, cache=cache)


def format_result(result: FIDResult) -> str:
    """Lines for the terminal; the last one is `FID:  <value>` exactly like pytorch-fid prints it."""
    lines = [f"features: {result.extractor} [{result.dims}-d]", f"N: {result.n_a} vs {result.n_b}"]
    if not result.comparable:
        lines.append("WARNING: fallback feature extractor, NOT comparable to published FID values")
    if result.kid_mean is not None:
        lines.append(f"KID:  {result.kid_mean:.6g} +- {result.kid_std:.3g} (subsets of {result.kid_subset_size})")
    lines.append(f"FID:  {result.value}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- training loops

class FIDEvaluator:
    """Real statistics held once; call it with generated images for an `FIDResult` (FID + KID)."""

    def __init__(self, extractor: FeatureExtractor, real: Stats, batch_size: int = FID["batch_size"],
                 kid_subset_size: int | None = None, kid_subsets: int = FID["kid_subsets"]):
        self.extractor, self.real, self.batch_size = extractor, real, batch_size
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets

    @classmethod
    def for_dataset(cls, real_images: torch.Tensor | Iterable | Callable[[], Iterable], dataset_id: str, n: int,
                    *, transform: str = "", weights: str | os.PathLike | None = None, dims: int = FID["dims"],
                    fallback: bool = False, seed: int = 0, device: str | torch.device | None = None,
                    batch_size: int = FID["batch_size"], kid_subset_size: int | None = None,
                    kid_subsets: int = FID["kid_subsets"],
                    cache: bool = True) -> "FIDEvaluator":
        """Build the extractor and get the real statistics of the first `n` images (from cache if there).

        `real_images`: [0,1] NCHW tensor, DataLoader (of images or (image, label) pairs), or a
        callable returning one. Use a fixed, unshuffled order so "the first n" means the same
        images each run. `fallback=True` calibrates the fallback network on those images.
        """
        if fallback:
            real = take_images(real_images() if callable(real_images) else real_images, n)
            extractor = fallback_extractor(real, seed=seed, dims=dims, device=device, batch_size=batch_size)
            real_images = real
        else:
            extractor = inception_extractor(weights, dims, device)
        stats = cached_stats(extractor, real_images, dataset_id, n, transform, batch_size, cache)
        return cls(extractor, stats, batch_size, kid_subset_size, kid_subsets)

    def __call__(self, fake_images: torch.Tensor | Iterable, n: int | None = None, *,
                 description: str = "FID features of generated images",
                 should_stop: Callable[[], bool] | None = None) -> FIDResult:
        """FID/KID of generated [0,1] images (the first `n` if given) against the real statistics."""
        feats = features_from_tensors(self.extractor, fake_images, self.batch_size, n, description=description,
                                      should_stop=should_stop)
        fake = Stats.from_features(feats, self.extractor)
        return fid_from_stats(self.real, fake, self.extractor.dims, self.extractor,
                              self.kid_subset_size, self.kid_subsets)
