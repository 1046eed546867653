"""Mutual Information Gap (Chen et al. 2018, "Isolating sources of disentanglement in VAEs"), as
disentanglement_lib computes it: per factor, the gap between the two latents of highest (binned)
mutual information with it, divided by the factor's entropy; averaged over factors."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.eval.disentanglement.mutual_info import discrete_entropy, mutual_info_matrix
from genlab.eval.disentanglement.protocol import MIGSettings


def mig_from_mutual_info(mi: np.ndarray, entropy: np.ndarray) -> tuple[float, np.ndarray]:
    """MIG and the per-factor gaps from a (D, K) MI matrix and the K factor entropies (nats).
    One latent only: the gap is the top MI itself. A factor constant in the sample (entropy 0) has
    no gap (NaN) and is left out of the mean."""
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    varies = entropy > 0
    gaps = np.full(mi.shape[1], np.nan)
    gaps[varies] = (top[0] - second)[varies] / entropy[varies]
    return (float(np.mean(gaps[varies])) if varies.any() else 0.0), gaps


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = MIGSettings.bins) -> dict[str, Any]:
    """MIG of codes (N, D) against factor classes (N, K); also the MI matrix and entropies."""
    mi = mutual_info_matrix(codes, factors, bins)
    entropy = discrete_entropy(factors)
    score, gaps = mig_from_mutual_info(mi, entropy)
    return {"score": score, "per_factor": gaps.tolist(), "mutual_info": mi, "entropy": entropy}


def compute(codes_of: Callable[[np.ndarray], np.ndarray], data: GroundTruth, rng: np.random.Generator,
            settings: MIGSettings) -> dict[str, Any]:
    factors = data.sample_factors(settings.num_train, rng)
    return mig(codes_of(factors), factors, settings.bins)
