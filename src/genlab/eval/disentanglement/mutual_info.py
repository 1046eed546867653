"""Discrete mutual information between binned latents and factor classes (MIG, modularity, the
heatmap): each latent cut into equal-width bins (np.histogram's edges, as disentanglement_lib's
histogram discretizer), MI and entropies in nats by scikit-learn's `mutual_info_score`."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """(N, D) float -> (N, D) int bin numbers 1..bins, equal-width bins over each latent's range.
    A constant latent falls into one bin."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1])  # the maximum lands in the last bin, not beyond
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) matrix of I(code_i; factor_k) in nats."""
    d, k = discrete_codes.shape[1], factors.shape[1]
    return np.array([[mutual_info_score(factors[:, j], discrete_codes[:, i]) for j in range(k)]
                     for i in range(d)]).reshape(d, k)


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """(K,) entropies H(factor_k) in nats (of the sample)."""
    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])


def mutual_info_matrix(codes: np.ndarray, factors: np.ndarray, bins: int) -> np.ndarray:
    return discrete_mutual_info(histogram_discretize(codes, bins), factors)
