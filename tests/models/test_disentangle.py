"""The disentangling VAEs: Locatello et al.'s network, the true ELBO beside the weighted losses, the
beta-TCVAE decomposition against closed forms, and the FactorVAE discriminator."""

import math
import subprocess
import sys

import pytest
import torch
from torch.distributions import Bernoulli, Independent

from genlab.eval.likelihood import loglik_table
from genlab.models.disentangle import (
    BetaTCVAE,
    BetaVAE,
    CodeDiscriminator,
    DisentanglingVAE,
    FactorVAE,
    discriminator_loss,
    kl_decomposition,
    log_stratified_weights,
    permute_dims,
)
from genlab.models.distributions import kl_diag_to_standard, log_normal_diag, log_standard_normal


def binary_images(n: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 1, 64, 64, generator=torch.Generator().manual_seed(seed)) > 0.9).float()


def test_the_network_is_locatello_et_al():
    vae = DisentanglingVAE()
    convs = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    dense = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(1024, 256), (256, 10), (256, 10)]
    deconvs = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == [(64, 64), (64, 32), (32, 32), (32, 1)]
    assert [(d.in_features, d.out_features) for d in vae.decoder.dense if isinstance(d, torch.nn.Linear)] == [
        (10, 256), (256, 1024)]
    x = binary_images(3)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 10)
    assert vae.decode(mean).shape == x.shape
    assert vae.log_likelihood(x, torch.randn(5, 3, 10)).shape == (5, 3)  # leading sample dims pass through
    with pytest.raises(ValueError, match="divisible by 16"):
        DisentanglingVAE(image_size=40)


def test_the_bernoulli_likelihood_matches_torch():
    torch.manual_seed(0)
    vae, x, z = DisentanglingVAE(), binary_images(2), torch.randn(2, 10)
    ref = Independent(Bernoulli(logits=vae.decode_logits(z)), 3).log_prob(x)
    assert torch.allclose(vae.log_likelihood(x, z), ref, rtol=1e-5)


@pytest.mark.parametrize("model", [BetaVAE(beta=4.0), BetaTCVAE(beta=6.0), FactorVAE(gamma=35.0, disc_hidden=32)],
                         ids=["betavae", "btcvae", "factorvae"])
def test_the_reported_elbo_is_the_true_one_whatever_the_weights(model):
    x = binary_images(8)
    torch.manual_seed(1)
    kwargs = {"dataset_size": 1000} if isinstance(model, BetaTCVAE) else {}
    out = model.objective(x, **kwargs)
    torch.manual_seed(1)
    plain = DisentanglingVAE.elbo(model, x)  # the same z (same seed), beta = 1
    assert torch.allclose(out["elbo"], plain["elbo"])
    assert torch.allclose(out["elbo"], out["log_likelihood"] - out["kl"])
    # the loss weights terms, the ELBO does not
    rec, kl = out["log_likelihood"], out["kl"]
    if isinstance(model, BetaVAE):
        expected = -(rec - 4.0 * kl)
    elif isinstance(model, BetaTCVAE):
        expected = out["mi"] + 6.0 * out["tc"] + out["dimkl"] - rec
    else:
        expected = kl - rec + 35.0 * out["tc"]
    assert torch.allclose(out["loss"], expected.mean())
    assert float(out["loss"].detach() + plain["elbo"].detach().mean()) != 0.0


def test_stratified_weights_are_a_distribution_per_row():
    w = log_stratified_weights(6, 100).exp()
    assert torch.allclose(w.sum(1), torch.ones(6))
    assert torch.allclose(w.diagonal(), torch.full((6,), 1 / 100))
    m = 5
    assert (torch.isclose(w, torch.tensor((100 - m) / (100 * m))).sum(1) == 1).all()  # one stratum weight per row


def posterior_batch(means: torch.Tensor, std: float, seed: int = 99):  # not the means' seed: independent noise
    logvar = torch.full_like(means, 2 * math.log(std))
    z = means + std * torch.randn(means.shape, generator=torch.Generator().manual_seed(seed))
    return z, means, logvar


def test_identical_posteriors_carry_no_information_and_no_correlation():
    means = torch.randn(1, 4).expand(500, 4).contiguous()
    parts = kl_decomposition(*posterior_batch(means, 0.7), dataset_size=10_000)
    # q(z) = q(z|x) for every x: the MI estimate is exactly 0, and the factorised q(z) has TC exactly 0
    assert parts["mi"].abs().max() < 1e-4
    assert parts["tc"].abs().max() < 1e-4


def test_total_correlation_is_near_zero_for_independent_codes_and_large_for_correlated_ones():
    torch.manual_seed(0)
    independent = torch.randn(2000, 2)
    tc_indep = kl_decomposition(*posterior_batch(independent, 0.1), dataset_size=2000)["tc"].mean()
    shared = torch.randn(2000, 1).expand(2000, 2).contiguous()  # both dimensions the same value
    tc_corr = kl_decomposition(*posterior_batch(shared, 0.1), dataset_size=2000)["tc"].mean()
    assert abs(float(tc_indep)) < 0.1
    # the truth for the second: I(z1; z2) of two N(0, 1 + 0.01) with correlation 1 / 1.01 = 1.96 nats
    assert float(tc_corr) > 1.5


def test_the_three_terms_sum_to_the_kl():
    torch.manual_seed(0)
    means = torch.randn(2000, 5) * torch.tensor([2.0, 1.0, 0.5, 0.1, 0.0])
    z, mean, logvar = posterior_batch(means, 0.3)
    parts = kl_decomposition(z, mean, logvar, dataset_size=737_280)
    total = parts["mi"] + parts["tc"] + parts["dimkl"]
    # per image exactly the one-sample KL estimate log q(z|x) - log p(z) ...
    assert torch.allclose(total, log_normal_diag(z, mean, logvar) - log_standard_normal(z), atol=1e-3)
    # ... whose mean is the closed-form KL within its standard error
    kl = kl_diag_to_standard(mean, logvar)
    se = float(total.std() / math.sqrt(len(total)))
    assert abs(float(total.mean() - kl.mean())) < 4 * se


def test_permuting_keeps_each_dimension_and_breaks_the_pairing():
    z = torch.arange(200.0).view(100, 2)
    p = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(2):
        assert torch.equal(p[:, d].sort().values, z[:, d])
    assert not torch.equal(p[:, 1] - p[:, 0], z[:, 1] - z[:, 0])


def test_the_discriminator_learns_to_spot_dependent_codes():
    torch.manual_seed(0)
    disc = CodeDiscriminator(2, hidden=64, layers=3)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(0)

    def loss_on_batch() -> torch.Tensor:
        u = torch.randn(256, 1, generator=g)
        z = torch.cat([u, u + 0.1 * torch.randn(256, 1, generator=g)], 1)  # strongly dependent dimensions
        return discriminator_loss(disc(z), disc(permute_dims(z, g)))

    with torch.no_grad():
        start = float(loss_on_batch())
    for _ in range(100):
        loss = loss_on_batch()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = float(loss_on_batch())
    assert abs(start - math.log(2)) < 0.1  # chance at the start
    assert end < 0.4  # well below chance: it tells codes from permuted codes


def test_the_models_do_not_import_lightning():
    code = "import sys, genlab.models.disentangle, genlab.models.registry; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_loglik_estimators_work_on_a_disentangling_vae():
    torch.manual_seed(0)
    model = BetaTCVAE().eval()
    x = binary_images(2)
    table = loglik_table(model, x, [0, 1], estimators=("is",), samples=64, seed=0, is_={"proposal": "encoder"})
    log_px = table.estimates["is"].log_px
    assert table.likelihood == "bernoulli" and all(math.isfinite(v) for v in log_px)
    # importance sampling with the encoder is the IWAE bound: at least the ELBO, up to noise
    assert (log_px >= table.elbo - 3 * table.elbo_se - 1.0).all()
