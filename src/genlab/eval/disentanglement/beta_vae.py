"""BetaVAE score (Higgins et al. 2017), as disentanglement_lib's `beta_vae_sklearn`: a point is a
factor k drawn uniformly and `batch_size` pairs of factor draws that agree on k; its feature is
the mean over the pairs of |z(x1) - z(x2)| (per latent) and its label k. A logistic regression is
fitted on `num_train` points; the score is its accuracy on `num_eval` fresh points."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.protocol import BetaVAESettings

CHUNK = 256  # points whose pairs are encoded together (bounds memory: CHUNK * batch_size * 2 codes)


def features(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, n: int, batch_size: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) mean absolute code differences and (n,) the fixed factor of each."""
    feats, labels = [], []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        k = rng.integers(0, data.num_factors, m)
        f1 = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        f2 = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        rows = np.arange(m)
        f2[rows, :, k] = f1[rows, :, k]
        z1 = codes_of(f1.reshape(m * batch_size, -1)).reshape(m, batch_size, -1)
        z2 = codes_of(f2.reshape(m * batch_size, -1)).reshape(m, batch_size, -1)
        feats.append(np.abs(z1 - z2).mean(axis=1))
        labels.append(k)
    return np.concatenate(feats), np.concatenate(labels)


def beta_vae_score(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray,
                   seed: int = 0) -> dict[str, Any]:
    if len(np.unique(train_y)) < 2:
        guess = train_y[0]
        return {"score": float(np.mean(eval_y == guess)), "train_accuracy": 1.0}
    model = LogisticRegression(max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_y)
    return {"score": float(model.score(eval_x, eval_y)), "train_accuracy": float(model.score(train_x, train_y))}


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: BetaVAESettings) -> dict[str, Any]:
    tx, ty = features(codes_of, data, settings.num_train, settings.batch_size, rng)
    ex, ey = features(codes_of, data, settings.num_eval, settings.batch_size, rng)
    return beta_vae_score(tx, ty, ex, ey, int(rng.integers(2**31 - 1)))
