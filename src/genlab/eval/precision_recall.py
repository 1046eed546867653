"""Improved precision and recall (Kynkäänniemi et al., 2019) on feature vectors.

Each set's manifold is the union of balls around its points, each ball's radius the distance
to that point's k-th nearest neighbour in its own set (k = 3, the paper's choice). Then

- precision = the fraction of generated points inside the real manifold (are samples realistic?),
- recall    = the fraction of real points inside the generated manifold (is the data covered?),

so a generator that collapses onto a few modes keeps its precision and loses its recall. genlab
applies it to the same Inception (or fallback) features as FD/KID, as the issue asks; the
paper used VGG-16 features, so values are not comparable to its tables.

    pr = precision_recall(real_features, fake_features, k=3)
    pr.precision, pr.recall

Distances are Euclidean, in float64, a block of rows at a time (memory O(block x N)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from genlab.errors import GenlabError

__all__ = ["PrecisionRecall", "knn_radii", "inside_manifold", "precision_recall"]

K = 3
BLOCK = 1024  # rows of the distance matrix held at once


@dataclass
class PrecisionRecall:
    precision: float
    recall: float
    k: int
    n_real: int
    n_fake: int

    def as_dict(self) -> dict:
        return asdict(self)


def _as_tensor(x: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(torch.float64)
    if t.dim() != 2:
        raise GenlabError(f"precision/recall needs {what} features shaped N x D, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise GenlabError(f"precision/recall: the {what} features contain NaN or inf")
    return t


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of a and b (float64; squared form clamped at 0)."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2 * a @ b.T
    return sq.clamp_(min=0).sqrt_()


def knn_radii(features: np.ndarray | torch.Tensor, k: int = K, block: int = BLOCK) -> np.ndarray:
    """For each point, the distance to its k-th nearest neighbour among the *other* points."""
    x = _as_tensor(features, "the")
    if not 1 <= k < len(x):
        raise GenlabError(f"precision/recall with k={k} needs more than k points per set, got {len(x)}")
    out = []
    for start in range(0, len(x), block):
        d = _distances(x[start:start + block], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # a point is not its own neighbour
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out).numpy()


def inside_manifold(points: np.ndarray | torch.Tensor, support: np.ndarray | torch.Tensor,
                    radii: np.ndarray | torch.Tensor, block: int = BLOCK) -> np.ndarray:
    """Boolean per point: within radii[j] of some support[j] (the ball includes its boundary)."""
    p, s = _as_tensor(points, "query"), _as_tensor(support, "support")
    r = torch.as_tensor(np.asarray(radii), dtype=torch.float64)
    if p.shape[1] != s.shape[1]:
        raise GenlabError(f"precision/recall: feature dims differ ({p.shape[1]} vs {s.shape[1]}); "
                          "compute both sets with the same extractor and dims")
    out = []
    for start in range(0, len(p), block):
        out.append((_distances(p[start:start + block], s) <= r).any(dim=1))
    return torch.cat(out).numpy()


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = K,
                     block: int = BLOCK) -> PrecisionRecall:
    """Improved precision and recall of `fake` against `real` (N x D feature arrays)."""
    real_t, fake_t = _as_tensor(real, "real"), _as_tensor(fake, "generated")
    precision = inside_manifold(fake_t, real_t, knn_radii(real_t, k, block), block).mean()
    recall = inside_manifold(real_t, fake_t, knn_radii(fake_t, k, block), block).mean()
    return PrecisionRecall(float(precision), float(recall), k, len(real_t), len(fake_t))
