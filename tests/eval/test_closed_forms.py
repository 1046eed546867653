"""The estimators' building blocks against answers known in closed form: HMC leaves a standard
Gaussian's moments in place, the ESS and the replicate standard error of hand-made weights, and the
Bernoulli branch of bits per dimension."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.eval.estimate import ess, replicate_se, replicates
from genlab.eval.hmc import Point, hmc_step
from genlab.eval.units import bits_per_dim


def standard_normal(z: torch.Tensor) -> Point:
    """log N(z; 0, I) up to a constant, and its gradient -z."""
    return Point(z, -0.5 * z.pow(2).sum(-1), -z)


@pytest.mark.parametrize("start", [0.0, 3.0])
def test_hmc_keeps_a_standard_gaussian_and_finds_it_from_afar(start):
    """4000 chains for each of 2 images in 3 dims: started in the target (start 0: a draw from it) the
    moments stay, started 3 sd away they arrive. Mean 0 and variance 1 within 5 standard errors."""
    g = torch.Generator().manual_seed(0)
    chains, images, d = 4000, 2, 3
    z = torch.randn(chains, images, d, generator=g, dtype=torch.float64) + start
    point = standard_normal(z)
    step = torch.tensor([0.6, 0.9], dtype=torch.float64)  # a step size per image
    for _ in range(60):
        point, accept = hmc_step(point, standard_normal, step, n_leapfrog=3, generator=g)
    z = point.z.reshape(-1, d)
    n = z.shape[0]
    assert z.mean(0).abs().max() < 5 / math.sqrt(n)
    assert (z.var(0) - 1).abs().max() < 5 * math.sqrt(2 / n)
    assert 0.5 < accept.mean() < 1.0  # Metropolis does its job: most proposals pass, not all


def test_hmc_rejects_what_a_huge_step_proposes():
    """A step far beyond the stable range (leapfrog on N(0, 1) is unstable for eps > 2) is rejected:
    the chain stays where it was and the acceptance probability is ~0."""
    z = torch.full((5, 1, 2), 0.5, dtype=torch.float64)
    point, accept = hmc_step(standard_normal(z), standard_normal, torch.tensor([50.0], dtype=torch.float64), 4,
                             generator=torch.Generator().manual_seed(1))
    assert torch.equal(point.z, z) and accept.max() < 1e-12


def test_ess_of_known_weights():
    log = torch.log
    # equal weights: every sample counts
    assert ess(torch.zeros(7, 2)).tolist() == pytest.approx([7.0, 7.0])
    # k equal weights among n, the rest zero: ESS = k
    w = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    assert float(ess(log(w))) == pytest.approx(3.0)
    # (sum w)^2 / sum w^2 for 1, 2, 3: 36 / 14, whatever the common scale of the weights
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert float(ess(log(w))) == pytest.approx(36 / 14)
    assert float(ess(log(w) + 700.0)) == pytest.approx(36 / 14)  # no overflow at e^700
    # along dim 1
    assert ess(log(w)[None].expand(2, 3), dim=1).tolist() == pytest.approx([36 / 14, 36 / 14])


def test_replicate_se_of_known_blocks():
    # std (n-1) of 1, 2, 3, 4 is sqrt(5/3); se = that / sqrt(4)
    assert float(replicate_se(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))) == \
        pytest.approx(math.sqrt(5 / 3) / 2)
    # weights 1, 1 | 3, 3 in two blocks: block estimates log 1 and log 3, se = std / sqrt(2) = log(3) / 2
    log_w = torch.log(torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=torch.float64))
    blocks = replicates(log_w, 2)
    assert blocks.tolist() == pytest.approx([0.0, math.log(3)])
    assert float(replicate_se(blocks)) == pytest.approx(math.log(3) / 2)
    # identical blocks: no spread; one block: no estimate of the spread
    assert float(replicate_se(replicates(torch.zeros(10), 5))) == 0.0
    assert math.isnan(float(replicate_se(torch.tensor([2.0]))))


def test_bernoulli_bits_per_dim_in_closed_form():
    """A Bernoulli model with p = 1/2 per pixel gives any binary image probability 2^-D: 1 bit per
    dimension, no 8-bit offset (a probability, not a density); the Gaussian branch adds the 8 bits."""
    from genlab.models.vae import ConvVAE

    vae = ConvVAE(in_channels=1, image_size=16, latent_dim=2, channels=(4, 4), likelihood="bernoulli")
    last = vae.decoder[-2]  # the conv before the sigmoid: zeroed, every pixel's p is sigmoid(0) = 1/2
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    x = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with torch.no_grad():
        log_px = vae.log_likelihood(x, torch.randn(3, 2))
    d = 16 * 16
    assert log_px.tolist() == pytest.approx([d * math.log(0.5)] * 3)
    assert bits_per_dim(log_px.numpy(), d, "bernoulli") == pytest.approx(np.ones(3))
    # p = 1/4 on a white image: -log2(1/4) = 2 bits per dim
    assert bits_per_dim(d * math.log(0.25), d, "bernoulli") == pytest.approx(2.0)
    assert bits_per_dim(d * math.log(0.25), d, "gaussian") == pytest.approx(10.0)
