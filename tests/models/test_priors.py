"""Priors over code maps: PixelCNN causality (by gradients) and exact normalisation, the fast
sampler against the full forward, sampling shapes, the mixture's snapping and modes."""

import itertools
import math

import numpy as np
import pytest
import torch

from genlab.models.priors.code_vae import CodeVAE
from genlab.models.priors.gmm import GMMPrior
from genlab.models.priors.pixelcnn import GatedPixelCNN


def test_pixelcnn_is_causal_without_blind_spot():
    torch.manual_seed(0)
    h = w = 5
    net = GatedPixelCNN(num_codes=4, hidden=8, layers=6).double()
    e = torch.randn(1, 8, h, w, dtype=torch.double)
    for r, c in itertools.product(range(h), range(w)):
        x = e.clone().requires_grad_(True)
        net.forward_embedded(x)[0, :, r, c].sum().backward()
        seen = x.grad.abs().sum(1)[0] > 0  # (h, w): which inputs the logits at (r, c) depend on
        before = torch.zeros(h, w, dtype=torch.bool)
        before.view(-1)[: r * w + c] = True
        assert not seen[~before].any(), f"logits at {(r, c)} see position i >= their own"
        # six layers cover every earlier position of a 5x5 map: no blind spot (e.g. above-right)
        assert seen[before].all(), f"logits at {(r, c)} miss earlier positions {(~seen & before).nonzero().tolist()}"


def test_pixelcnn_log_prob_is_normalised_over_all_maps():
    torch.manual_seed(0)
    net = GatedPixelCNN(num_codes=3, hidden=8, layers=2).double().eval()
    maps = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)  # all 81 maps
    total = torch.logsumexp(net.log_prob(maps), 0)
    assert abs(float(total.detach())) < 1e-9


def test_pixelcnn_windowed_rows_give_the_full_logits():
    torch.manual_seed(0)
    net = GatedPixelCNN(num_codes=5, hidden=8, layers=3).double().eval()
    x = torch.randint(5, (2, 12, 6))
    full = net(x)
    ctx = net.rows_of_context
    for r in range(12):
        top = max(0, r - ctx)
        assert torch.allclose(net(x[:, top:r + 1])[:, :, r - top], full[:, :, r]), r
    # one row fewer is not enough: the window really is the receptive field
    r = 11
    assert not torch.allclose(net(x[:, r - ctx + 1:r + 1])[:, :, -1], full[:, :, r])


def test_pixelcnn_samples():
    torch.manual_seed(0)
    net = GatedPixelCNN(num_codes=6, hidden=8, layers=2, grid=(4, 5)).eval()
    s = net.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 4, 5) and s.dtype == torch.int64 and 0 <= int(s.min()) and int(s.max()) < 6
    again = net.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)
    assert net.sample(2, shape=(3, 3)).shape == (2, 3, 3)


def test_code_vae_samples_and_bound():
    torch.manual_seed(0)
    net = CodeVAE(num_codes=7, grid=(8, 8), latent_dim=4, hidden=8, embed_dim=4).eval()
    s = net.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 8, 8) and s.dtype == torch.int64 and int(s.max()) < 7
    x = torch.randint(7, (5, 8, 8))
    out = net.elbo(x)
    assert out["elbo"].shape == (5,)
    # an ELBO is at most log p(x) <= 0 for a discrete x; the KL is non-negative
    assert (out["elbo"] <= 0).all() and (out["kl"] >= 0).all()
    assert torch.allclose(out["elbo"], out["log_likelihood"] - out["kl"])


def test_code_vae_mode_is_the_decoders_most_likely_code_for_the_same_z():
    torch.manual_seed(0)
    net = CodeVAE(num_codes=7, grid=(8, 8), latent_dim=4, hidden=8, embed_dim=4).eval()
    mode = net.sample(3, generator=torch.Generator().manual_seed(5), temperature=0)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))  # the sampler's first draw
    assert torch.equal(mode, net.decode(z).argmax(1))
    sampled = net.sample(3, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(sampled, mode)  # drawing every position is a different map
    with pytest.raises(ValueError, match="temperature"):
        net.sample(1, temperature=-1)


def test_gmm_snaps_to_nearest_code_and_finds_the_modes():
    rng = np.random.default_rng(0)
    codebook = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # two kinds of 4x4 maps: all code 1, or all code 2, with a few positions flipped to code 0
    maps = np.concatenate([np.full((30, 4, 4), 1), np.full((30, 4, 4), 2)])
    flip = rng.random(maps.shape) < 0.05
    maps[flip] = 0
    prior = GMMPrior(components=2, pca_dim=4, covariance="full", seed=0, chunk=16).fit(maps, codebook)
    s = prior.sample(20, generator=torch.Generator().manual_seed(1))
    assert s.shape == (20, 4, 4) and s.dtype == torch.int64
    majority = torch.mode(s.flatten(1), dim=1).values
    assert set(majority.tolist()) == {1, 2}, "both modes are sampled"
    assert float((s == majority[:, None, None]).float().mean()) > 0.8

    vectors = rng.normal(size=(3, 16 * 2)).astype(np.float32)
    brute = np.linalg.norm(vectors.reshape(3, 16, 1, 2) - codebook[None, None], axis=-1).argmin(-1)
    assert np.array_equal(prior.snap(vectors).reshape(3, 16), brute)


def test_gmm_diag_handles_a_short_last_chunk():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(5, 3)).astype(np.float32)
    maps = rng.integers(0, 5, size=(37, 2, 2))
    prior = GMMPrior(components=3, pca_dim=6, covariance="diag", chunk=16).fit(maps, codebook)
    assert prior.pca.n_components_ == 6
    assert prior.sample(4).shape == (4, 2, 2)
    assert math.isfinite(float(prior.gmm.lower_bound_))


def test_pixelcnn_fast_sampler_matches_full_forward_sampling():
    """The row-cached sampler against the plain definition: full forward, one position at a time."""
    torch.manual_seed(0)
    net = GatedPixelCNN(num_codes=5, hidden=8, layers=3).double().eval()
    n, (h, w) = 4, (13, 6)  # more rows than rows_of_context (7), so the window is cropped

    def naive(generator):
        out = torch.zeros(n, h, w, dtype=torch.long)
        for r, c in itertools.product(range(h), range(w)):
            probs = torch.softmax(net(out)[:, :, r, c].double(), dim=1)
            out[:, r, c] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return out

    with torch.no_grad():
        expected = naive(torch.Generator().manual_seed(3))
    fast = net.sample(n, generator=torch.Generator().manual_seed(3), shape=(h, w))
    assert torch.equal(fast, expected)
    assert len(torch.unique(fast)) > 1


# --- one protocol for every prior ---------------------------------------------------------------------
def fitted_priors():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 5, size=(40, 4, 4))
    gmm = GMMPrior(components=2, pca_dim=4, chunk=16).fit(maps, rng.normal(size=(5, 3)).astype(np.float32))
    vae = CodeVAE(num_codes=5, grid=(4, 4), latent_dim=2, hidden=4, embed_dim=2).eval()
    pixelcnn = GatedPixelCNN(num_codes=5, hidden=4, layers=2, grid=(4, 4)).eval()
    return {"gmm": gmm, "vae": vae, "pixelcnn": pixelcnn}, torch.from_numpy(maps[:6]).long()


@pytest.mark.parametrize("kind", ["gmm", "vae", "pixelcnn"])
def test_every_prior_keeps_the_protocol(kind):
    from genlab.models.priors import CodePrior, bits_per_map, sample_maps

    priors, maps = fitted_priors()
    prior = priors[kind]
    assert isinstance(prior, CodePrior) and prior.grid == (4, 4)
    seen: list[int] = []
    a = sample_maps(prior, 7, generator=torch.Generator().manual_seed(2), batch_size=3, advance=seen.append)
    b = sample_maps(prior, 7, generator=torch.Generator().manual_seed(2), batch_size=3)
    assert a.shape == (7, 4, 4) and a.dtype == torch.int64 and torch.equal(a, b)
    assert seen == [3, 3, 1]  # progress after every batch
    bits = bits_per_map(prior, maps, generator=torch.Generator().manual_seed(0), batch_size=4)
    expected_kind = {"gmm": None, "vae": "bound", "pixelcnn": "exact"}[kind]
    assert prior.log_prob_kind == expected_kind
    if expected_kind is None:
        assert bits is None and prior.log_prob(maps) is None
    else:
        # the reference: -log p / ln 2, batch by batch (4 then 2) with the same draws of the generator
        g = torch.Generator().manual_seed(0)
        ref = -torch.cat([prior.log_prob(maps[:4], generator=g), prior.log_prob(maps[4:], generator=g)]) / math.log(2)
        assert bits.shape == (6,) and (bits > 0).all()
        torch.testing.assert_close(bits, ref.to(bits.dtype))
        if kind == "pixelcnn":  # exact and deterministic: batching changes nothing
            whole = -prior.log_prob(maps) / math.log(2)
            torch.testing.assert_close(bits, whole.to(bits.dtype))

