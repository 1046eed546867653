"""The one place that fixes how log-likelihoods are reported.

Convention: log p(x) is in nats per image. Bits per dimension is -log2 p(x) / D, where for a
*continuous* density over pixel intensities scaled to [0, 1] (the Gaussian likelihood) we
add log2(256) = 8 bits: each 8-bit value owns a bin of width 1/256, so P(bin) ~ p(x) / 256^D.
For a discrete likelihood (Bernoulli, categorical) p(x) is already a probability: no offset.
"""

from __future__ import annotations

import math

import numpy as np

DISCRETE_LIKELIHOODS = ("bernoulli", "categorical")
BITS_PER_8BIT_BIN = 8.0


def bits_per_dim(log_px_nats, num_dims: int, likelihood: str):
    """Convert log p(x) in nats (scalar or array) to bits per dimension under the convention above."""
    bpd = -np.asarray(log_px_nats, dtype=np.float64) / (num_dims * math.log(2))
    if likelihood not in DISCRETE_LIKELIHOODS:
        bpd = bpd + BITS_PER_8BIT_BIN
    return bpd


def nats_to_log10(log_px_nats):
    """log10 p(x): what the study reported as raw probabilities (p = 10 ** value)."""
    return np.asarray(log_px_nats, dtype=np.float64) / math.log(10)


def convention(likelihood: str) -> str:
    if likelihood in DISCRETE_LIKELIHOODS:
        return f"{likelihood} likelihood: p(x) is a probability mass; bits/dim = -log2 p(x) / D"
    return (f"{likelihood} likelihood: p(x) is a density on [0,1]^D; bits/dim = -log2 p(x) / D + 8 "
            "(8-bit bins of width 1/256)")
