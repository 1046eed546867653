"""SAP score (Kumar et al. 2018, "Variational inference of disentangled latent concepts", Sec. 3),
as disentanglement_lib computes it: a (D, K) score matrix (discrete factors: test accuracy of a
linear SVC predicting factor k from latent i alone; continuous: squared correlation), then the mean
over factors of the gap between the two best latents."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.protocol import SAPSettings


def score_matrix(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
                 continuous: bool = False, c: float = SAPSettings.svc_c) -> np.ndarray:
    d, k = codes.shape[1], factors.shape[1]
    out = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            if continuous:
                cov = np.cov(codes[:, i], factors[:, j], ddof=1)
                out[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
                continue
            if len(np.unique(factors[:, j])) < 2:
                out[i, j] = float(np.mean(factors_test[:, j] == factors[0, j]))
                continue
            svc = LinearSVC(C=c, class_weight="balanced")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svc.fit(codes[:, i:i + 1], factors[:, j])
            out[i, j] = float(np.mean(svc.predict(codes_test[:, i:i + 1]) == factors_test[:, j]))
    return out


def sap_from_matrix(matrix: np.ndarray) -> float:
    """Mean over factors (columns) of best minus second-best latent score."""
    s = np.sort(matrix, axis=0)
    return float(np.mean(s[-1] - s[-2])) if len(s) > 1 else float(np.mean(s[-1]))


def sap(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
        continuous: bool = False, c: float = SAPSettings.svc_c) -> dict[str, Any]:
    m = score_matrix(codes, factors, codes_test, factors_test, continuous, c)
    return {"score": sap_from_matrix(m), "score_matrix": m}


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: SAPSettings) -> dict[str, Any]:
    f = data.sample_factors(settings.num_train, rng)
    ft = data.sample_factors(settings.num_test, rng)
    return sap(codes_of(f), f, codes_of(ft), ft, settings.continuous_factors, settings.svc_c)
