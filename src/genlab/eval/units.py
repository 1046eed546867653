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


COMPARABILITY = ("bits/dim of a Gaussian (density) model and of a Bernoulli (probability) model cannot be "
                 "compared: one is a density over [0,1]^D discretised to 8-bit bins, the other a probability "
                 "of binary pixels")

# What the reference study reported, as raw probabilities, and why they cannot be right.
STUDY_VALUES = (("dSprites", 0.0253, 64 * 64), ("CelebA", 1.4e-23, 3 * 128 * 128))


def study_reference() -> dict:
    """The study's raw probabilities in nats beside ours, and why they cannot be right."""
    values = [{"dataset": name, "p": p, "log_px_nats": math.log(p), "num_dims": d,
               "bits_per_dim_as_probability": -math.log2(p) / d} for name, p, d in STUDY_VALUES]
    dsprites_n = 737_280
    why = (f"dSprites: p = 0.0253 would give one 4,096-pixel image 2.5% of all probability mass (at most 39 "
           f"images could have that) while dSprites has {dsprites_n:,} distinct images; even the ideal model "
           f"(uniform over them) gives each log p = {-math.log(dsprites_n):.1f} nats. CelebA: under the study's "
           f"MSE (unit-variance Gaussian) likelihood, log p(x|z) <= -(D/2) log(2 pi) = "
           f"{-0.5 * 3 * 128 * 128 * math.log(2 * math.pi):.0f} nats for any z on 49,152 dimensions, so "
           f"p(x) = 1.4e-23 (-52.6 nats) is impossible; a density of e^-52.6 over 49,152 dims would also be "
           f"~8.00 bits/dim, no better than uniform 8-bit noise")
    return {"values": values, "why": why}
