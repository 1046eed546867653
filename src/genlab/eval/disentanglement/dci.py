"""DCI (Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled
representations"), as disentanglement_lib computes it: one gradient-boosted tree classifier per
factor on all latents gives a (D, K) importance matrix R (impurity importances);
- disentanglement: sum_i rho_i (1 - H_K(P_i.)), P_i. = row i of R normalised, H_K the entropy in
  base K, rho_i = the share of latent i in the total importance;
- completeness: the same on the columns, entropy in base D, weighted by each factor's share;
- informativeness: the classifiers' mean test accuracy (dlib's `informativeness_test`)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.protocol import DCISettings

EPS = 1e-11  # added to every importance so that an all-zero row or column has a defined entropy


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    return 1.0 - entropy(importance.T + EPS, base=importance.shape[1])


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over latents of 1 - H_K(latent's importance over factors)."""
    importance = np.asarray(importance, dtype=np.float64)
    per_code = disentanglement_per_code(importance)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    return 1.0 - entropy(importance + EPS, base=importance.shape[0])


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - H_D(factor's importance over latents)."""
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = completeness_per_factor(importance)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def importance_gbt(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
                   n_estimators: int = DCISettings.n_estimators, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(D, K) importances, mean train accuracy, mean test accuracy."""
    d, k = codes.shape[1], factors.shape[1]
    importance = np.zeros((d, k))
    train_acc, test_acc = [], []
    for j in range(k):
        if len(np.unique(factors[:, j])) < 2:  # nothing to learn: no importance, constant prediction
            train_acc.append(1.0)
            test_acc.append(float(np.mean(factors_test[:, j] == factors[0, j])))
            continue
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
        model.fit(codes, factors[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(float(np.mean(model.predict(codes) == factors[:, j])))
        test_acc.append(float(np.mean(model.predict(codes_test) == factors_test[:, j])))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
        n_estimators: int = DCISettings.n_estimators, seed: int = 0) -> dict[str, Any]:
    importance, train_acc, test_acc = importance_gbt(codes, factors, codes_test, factors_test, n_estimators, seed)
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance),
            "informativeness": test_acc, "informativeness_train": train_acc, "importance": importance}


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: DCISettings) -> dict[str, Any]:
    f = data.sample_factors(settings.num_train, rng)
    ft = data.sample_factors(settings.num_test, rng)
    seed = int(rng.integers(2**31 - 1))
    return dci(codes_of(f), f, codes_of(ft), ft, settings.n_estimators, seed)
