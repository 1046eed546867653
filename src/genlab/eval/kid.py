"""Kernel Inception Distance (Binkowski et al., 2018) from the same features as FID.

Polynomial kernel k(x, y) = (x.y / d + 1)^3, unbiased MMD^2 estimate on random subsets of
both feature sets, reported as mean and standard deviation over subsets.
"""

from __future__ import annotations

import numpy as np

from genlab.errors import GenlabError

__all__ = ["kid", "polynomial_mmd2", "default_subset_size"]


def default_subset_size(n_a: int, n_b: int) -> int:
    """1000 (the paper's choice) when there is room, else half the smaller set so subsets differ."""
    return max(2, min(1000, min(n_a, n_b) // 2))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equally sized samples, cubic polynomial kernel, float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    # Unbiased: the diagonal k(x_i, x_i) terms are left out of the within-set sums.
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subset_size: int | None = None,
        subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of `subset_size` per side.

    `subset_size` must be below both N (else every subset is the whole set and the spread is
    meaningless); None picks `default_subset_size`.
    """
    n_a, n_b = len(features_a), len(features_b)
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise GenlabError(f"KID needs two feature sets with the same dims, got {features_a.shape} "
                          f"and {features_b.shape}; compute both with the same --dims")
    if subset_size is None:
        subset_size = default_subset_size(n_a, n_b)
    if not 2 <= subset_size < min(n_a, n_b):
        raise GenlabError(f"KID subset size {subset_size} must be at least 2 and below the number of "
                          f"images on each side (N = {n_a} and {n_b}); use a smaller subset size "
                          f"(e.g. {default_subset_size(n_a, n_b)}) or more images")
    if subsets < 1:
        raise GenlabError(f"KID needs at least one subset, got subsets={subsets}")
    rng = np.random.default_rng(seed)
    values = np.array([
        polynomial_mmd2(features_a[rng.choice(n_a, subset_size, replace=False)],
                        features_b[rng.choice(n_b, subset_size, replace=False)])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std())
