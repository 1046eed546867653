"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with
the F-statistic loss"), as disentanglement_lib computes them.

- modularity: per latent i with MI row m_i (binned, nats), 1 - (sum_k m_ik^2 - max_k m_ik^2) /
  (max_k m_ik^2 (K - 1)); a latent with no information scores 0; the mean over latents.
- explicitness: per factor, a logistic regression on all (standardised) latents predicts the
  class; the mean one-vs-rest ROC-AUC over classes on test points; the mean over factors."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.mutual_info import mutual_info_matrix
from genlab.eval.disentanglement.protocol import ModularitySettings


def modularity(mutual_info: np.ndarray) -> float:
    """From a (D, K) mutual-information matrix."""
    sq = np.square(np.asarray(mutual_info, dtype=np.float64))
    top = sq.max(axis=1)
    k = sq.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - top) / (top * (k - 1)) if k > 1 else np.zeros_like(top)
    score = np.where(top > 0, 1.0 - delta, 0.0)
    return float(np.mean(score))


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """By the training points' mean and standard deviation (a constant latent keeps scale 1)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def auc_one_vs_rest(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean ROC-AUC over the classes that occur (with some other class) among `y`."""
    scores = [roc_auc_score(y == c, proba[:, i]) for i, c in enumerate(classes) if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(scores)) if scores else 0.5


def explicitness_per_factor(codes: np.ndarray, y: np.ndarray, codes_test: np.ndarray, y_test: np.ndarray
                            ) -> tuple[float, float]:
    if len(np.unique(y)) < 2:
        return 1.0, 1.0
    clf = LogisticRegression(max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(codes, y)
    return (auc_one_vs_rest(y, clf.predict_proba(codes), clf.classes_),
            auc_one_vs_rest(y_test, clf.predict_proba(codes_test), clf.classes_))


def modularity_explicitness(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                            factors_test: np.ndarray, bins: int = ModularitySettings.bins) -> dict[str, Any]:
    mi = mutual_info_matrix(codes, factors, bins)
    train, test = standardise(codes, codes_test)
    pairs = [explicitness_per_factor(train, factors[:, j], test, factors_test[:, j]) for j in range(factors.shape[1])]
    return {"modularity": modularity(mi), "explicitness": float(np.mean([p[1] for p in pairs])),
            "explicitness_train": float(np.mean([p[0] for p in pairs]))}


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: ModularitySettings) -> dict[str, Any]:
    f = data.sample_factors(settings.num_train, rng)
    ft = data.sample_factors(settings.num_test, rng)
    return modularity_explicitness(codes_of(f), f, codes_of(ft), ft, settings.bins)
