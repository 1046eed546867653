"""FactorVAE score (Kim & Mnih 2018), as disentanglement_lib computes it: each latent's global
variance from `num_variance_estimate` points (ddof 1); latents with a standard deviation below
`prune_std` are left out. A vote draws a factor k and `batch_size` points sharing k's class, and
names the active latent of least variance relative to its global variance. The majority-vote
classifier maps each latent to the factor it was named for most often in `num_train` votes; the
score is the fraction of `num_eval` fresh votes it gets right. No active latent scores 0."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.protocol import FactorVAESettings

CHUNK = 256


def votes(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, n: int, batch_size: int,
          rng: np.random.Generator, global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(K, number of active latents) vote counts."""
    out = np.zeros((data.num_factors, int(active.sum())), dtype=np.int64)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        k = rng.integers(0, data.num_factors, m)
        f = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        rows = np.arange(m)
        f[rows, :, k] = f[rows, :1, k]  # every point of a vote shares its first point's class of k
        z = codes_of(f.reshape(m * batch_size, -1)).reshape(m, batch_size, -1)
        local = np.var(z, axis=1, ddof=1)
        pick = np.argmin(local[:, active] / global_var[active], axis=1)
        np.add.at(out, (k, pick), 1)
    return out


def score_from_votes(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float]:
    """(train accuracy, eval accuracy) of the majority-vote classifier latent -> factor."""
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(train_votes.shape[1])
    return (float(train_votes[classifier, cols].sum() / max(train_votes.sum(), 1)),
            float(eval_votes[classifier, cols].sum() / max(eval_votes.sum(), 1)))


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: FactorVAESettings) -> dict[str, Any]:
    z = codes_of(data.sample_factors(settings.num_variance_estimate, rng))
    global_var = np.var(z, axis=0, ddof=1)
    active = np.sqrt(global_var) >= settings.prune_std
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "num_active_dims": 0}
    tv = votes(codes_of, data, settings.num_train, settings.batch_size, rng, global_var, active)
    ev = votes(codes_of, data, settings.num_eval, settings.batch_size, rng, global_var, active)
    train_acc, eval_acc = score_from_votes(tv, ev)
    return {"score": eval_acc, "train_accuracy": train_acc, "num_active_dims": int(active.sum()),
            "active_dims": np.flatnonzero(active).tolist()}
