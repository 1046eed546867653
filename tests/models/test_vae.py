import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

from genlab.models.distributions import kl_diag_to_standard, log_normal_diag, log_standard_normal
from genlab.models.vae import ConvVAE


@pytest.mark.parametrize("channels, size, flat", [(1, 64, 512 * 2 * 2), (3, 128, 512 * 4 * 4)])
def test_study_architecture_shapes(channels, size, flat):
    torch.manual_seed(0)
    vae = ConvVAE(in_channels=channels, image_size=size, latent_dim=128)
    convs = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512]
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert vae.fc_mean.in_features == flat and vae.fc_mean.out_features == 128
    x = torch.rand(2, channels, size, size)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (2, 128)
    out = vae.decode(mean)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1  # sigmoid output
    assert vae.sample(vae.noise(3)).shape == (3, channels, size, size)
    # leading sample dimensions pass through decode and log_likelihood
    assert vae.log_likelihood(x, torch.randn(5, 2, 128)).shape == (5, 2)


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        ConvVAE(image_size=48)


def test_log_densities_match_torch_distributions():
    torch.manual_seed(0)
    z, mean, logvar = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    ref = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)
    assert torch.allclose(log_normal_diag(z, mean, logvar), ref.log_prob(z), atol=1e-5)
    assert torch.allclose(log_standard_normal(z), Independent(Normal(0 * z, 1 + 0 * z), 1).log_prob(z), atol=1e-5)
    assert torch.allclose(kl_diag_to_standard(mean, logvar),
                          torch.distributions.kl_divergence(ref, Independent(Normal(0 * z, 1 + 0 * z), 1)),
                          atol=1e-5)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_likelihoods_match_torch_distributions(likelihood):
    torch.manual_seed(0)
    vae = ConvVAE(1, 32, latent_dim=4, channels=(4, 8), likelihood=likelihood, sigma=0.3)
    x = (torch.rand(3, 1, 32, 32) > 0.5).float()
    z = torch.randn(3, 4)
    mean = vae.decode(z)
    if likelihood == "gaussian":
        ref = Independent(Normal(mean, 0.3), 3).log_prob(x)
    else:
        ref = Independent(Bernoulli(probs=mean.clamp(1e-6, 1 - 1e-6)), 3).log_prob(x)
    assert torch.allclose(vae.log_likelihood(x, z), ref, rtol=1e-5, atol=1e-3)


def test_elbo_against_brute_force_quadrature():
    """With a 1-d latent, E_q[log p(x|z)] + E_q[log p(z) - log q(z|x)] is a 1-d integral: compute it by
    Gauss-Hermite quadrature and compare with the mean of many one-sample ELBOs from the model."""
    torch.manual_seed(0)
    vae = ConvVAE(1, 16, latent_dim=1, channels=(4, 4), likelihood="gaussian", sigma=0.5).double()
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        mean, logvar = vae.encode(x)
        nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # for weight exp(-t^2/2)
        t = torch.tensor(nodes, dtype=torch.float64)[:, None, None]
        w = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=torch.float64)[:, None]
        z = mean + torch.exp(0.5 * logvar) * t  # (Q, B, 1)
        integrand = vae.log_likelihood(x, z) + log_standard_normal(z) - log_normal_diag(z, mean, logvar)
        exact = (w * integrand).sum(0)
        mc = torch.stack([vae.elbo(x)["elbo"] for _ in range(4000)]).mean(0)
    assert torch.allclose(mc, exact, atol=0.05)  # MC standard error here is ~0.01 nats


def test_beta_changes_the_loss_not_the_reported_elbo():
    torch.manual_seed(0)
    vae = ConvVAE(1, 32, latent_dim=4, channels=(4, 8))
    x = torch.rand(3, 1, 32, 32)
    torch.manual_seed(1)
    a = vae.elbo(x, beta=1.0)
    torch.manual_seed(1)
    b = vae.elbo(x, beta=4.0)
    assert torch.allclose(a["elbo"], b["elbo"])
    assert torch.allclose(b["loss"], -(b["log_likelihood"] - 4.0 * b["kl"]).mean())
    assert not torch.allclose(a["loss"], b["loss"])
