"""The quantiser's contract (shapes, nearest codes, straight-through gradient, EMA update by hand,
initialisation, dead-code restart) and the VQ-VAE around it."""

import math

import pytest
import torch

from genlab.models.vqvae import VQVAE, VectorQuantizer, compression, perplexity_of, psnr


def _fixed(codebook, kind="ema", decay=0.5, eps=0.0, threshold=0.0, usage_decay=0.5):
    """A quantiser whose codebook is set by hand (no data init, no restarts unless asked)."""
    cb = torch.tensor(codebook, dtype=torch.float32)
    q = VectorQuantizer(len(cb), cb.shape[1], codebook=kind, decay=decay, eps=eps, init="uniform",
                        restart_threshold=threshold, usage_decay=usage_decay)
    with torch.no_grad():
        q.embedding.copy_(cb)
        if kind == "ema":
            q.ema_sum.copy_(cb)
            q.ema_count.fill_(1.0)
    return q


def _as_map(vectors):
    """(M, D) -> (1, D, 1, M): M positions of one image."""
    return torch.tensor(vectors, dtype=torch.float32).t()[None, :, None, :]


def test_shapes_and_nearest_codes_match_brute_force():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 4, init="uniform").eval()
    q.embedding.copy_(torch.randn(8, 4))
    z = torch.randn(2, 4, 3, 5)
    out = q(z)
    assert out["quantized"].shape == z.shape
    assert out["indices"].shape == (2, 3, 5) and out["indices"].dtype == torch.int64
    assert out["loss"].shape == () and out["perplexity"].shape == ()
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    expected = torch.cdist(flat, q.embedding).argmin(1).view(2, 3, 5)
    assert torch.equal(out["indices"], expected)
    assert torch.allclose(out["quantized"].permute(0, 2, 3, 1), q.embedding[expected])
    assert 1.0 <= float(out["perplexity"]) <= 8.0
    assert int(out["counts"].sum()) == 30


def test_perplexity_is_k_for_uniform_use_and_one_for_a_single_code():
    assert math.isclose(float(perplexity_of(torch.tensor([5, 5, 5, 5]))), 4.0, rel_tol=1e-5)
    assert math.isclose(float(perplexity_of(torch.tensor([0, 9, 0, 0]))), 1.0, rel_tol=1e-5)


def test_straight_through_gradient_and_commitment_loss():
    q = _fixed([[0.0, 0.0], [10.0, 10.0]]).eval()
    z = _as_map([[1.0, 2.0], [9.0, 8.0]]).requires_grad_(True)
    out = q(z)
    (out["quantized"] * torch.tensor([3.0, -2.0])[None, :, None, None]).sum().backward()
    # the upstream gradient reaches z unchanged, as if quantisation were the identity
    assert torch.allclose(z.grad, torch.tensor([3.0, -2.0])[None, :, None, None].expand_as(z))
    # loss = beta * mean ||z - sg[e]||^2 = 0.25 * (1 + 4 + 1 + 4) / 4
    assert math.isclose(float(out["loss"].detach()), 0.25 * 10 / 4, rel_tol=1e-6)


def test_loss_codebook_gets_gradient_from_the_codebook_term():
    q = _fixed([[0.0, 0.0], [10.0, 10.0]], kind="loss").eval()
    z = _as_map([[1.0, 2.0], [9.0, 8.0]])
    out = q(z)
    out["loss"].backward()
    # d/de of mean over 4 numbers of (e - z)^2 = 2 (e - z) / 4
    expected = torch.tensor([[2 * (0 - 1) / 4, 2 * (0 - 2) / 4], [2 * (10 - 9) / 4, 2 * (10 - 8) / 4]])
    assert torch.allclose(q.embedding.grad, expected)


def test_ema_update_matches_hand_computation():
    # codes 0 and 10 (D = 1), decay 0.5, no smoothing; N starts at 1 and S at the codes
    q = _fixed([[0.0], [10.0]], decay=0.5).train()
    out = q(_as_map([[1.0], [2.0], [9.0]]))
    # the output uses the codebook before the update
    assert torch.equal(out["indices"].flatten(), torch.tensor([0, 0, 1]))
    assert torch.allclose(out["quantized"].flatten(), torch.tensor([0.0, 0.0, 10.0]))
    # n = [2, 1]: N = 0.5*1 + 0.5*[2, 1] = [1.5, 1]; S = 0.5*[0, 10] + 0.5*[1+2, 9] = [1.5, 9.5]
    assert torch.allclose(q.ema_count, torch.tensor([1.5, 1.0]))
    assert torch.allclose(q.embedding.flatten(), torch.tensor([1.5 / 1.5, 9.5 / 1.0]))
    # second step: 1 -> code 0 (at 1.0), 9 and 9 -> code 1 (at 9.5): n = [1, 2]
    q(_as_map([[1.0], [9.0], [9.0]]))
    # N = [0.75 + 0.5, 0.5 + 1] = [1.25, 1.5]; S = [0.75 + 0.5, 4.75 + 9] = [1.25, 13.75]
    assert torch.allclose(q.embedding.flatten(), torch.tensor([1.0, 13.75 / 1.5]))


def test_ema_laplace_smoothing():
    q = _fixed([[0.0], [10.0]], decay=0.5, eps=0.1).train()
    q(_as_map([[1.0], [2.0], [9.0]]))
    n = torch.tensor([1.5, 1.0])
    smoothed = (n + 0.1) / (n.sum() + 2 * 0.1) * n.sum()
    assert torch.allclose(q.embedding.flatten(), torch.tensor([1.5, 9.5]) / smoothed)


def test_eval_mode_changes_nothing():
    q = _fixed([[0.0], [10.0]], threshold=100.0).eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(_as_map([[1.0], [2.0], [9.0]]))
    for k, v in q.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_dead_code_restart_moves_an_unused_code_onto_the_data():
    torch.manual_seed(0)
    q = _fixed([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [100.0, 100.0]], kind="loss", decay=0.5, threshold=0.5).train()
    z = _as_map([[0.1, 0.0], [0.9, 1.1], [2.1, 1.9], [0.0, 0.2], [1.0, 0.9], [1.9, 2.0]])
    batch = z[0, :, 0, :].t()
    # usage starts at 6 / 4 = 1.5 per code; code 3 is never picked, so it halves each step:
    # 0.75, 0.375 < 0.5 -> restarted at the second step
    q(z)
    assert int(q.restarts) == 0 and torch.equal(q.embedding[3], torch.tensor([100.0, 100.0]))
    q(z)
    assert int(q.restarts) == 1
    assert any(torch.equal(q.embedding[3], row) for row in batch), "restarted onto an encoder output"
    assert torch.equal(q.embedding[:3], torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))  # live codes kept
    assert float(q.usage[3]) == pytest.approx(1.5)  # a fresh grace period


def test_restart_resets_the_ema_statistics_of_the_code():
    torch.manual_seed(0)
    q = _fixed([[0.0], [100.0]], decay=0.5, threshold=0.9).train()
    z = _as_map([[0.5], [1.0]])
    q(z)  # usage: code 1 = 0.5 * 1 + 0 = 0.5 < 0.9 -> restarted
    assert int(q.restarts) == 1
    assert float(q.embedding[1]) in (0.5, 1.0)
    assert float(q.ema_count[1]) == 1.0 and torch.equal(q.ema_sum[1], q.embedding[1])


def test_no_restart_when_disabled():
    q = _fixed([[0.0], [100.0]], decay=0.5, threshold=0.0).train()
    for _ in range(5):
        q(_as_map([[0.5], [1.0]]))
    assert int(q.restarts) == 0 and float(q.embedding[1]) == 100.0


def test_kmeans_init_finds_well_separated_clusters():
    centres = torch.tensor([[-5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [5.0, 5.0]])
    gen = torch.Generator().manual_seed(0)
    pts = centres.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 2, generator=gen)
    q = VectorQuantizer(4, 2, init="kmeans", restart_threshold=0).train()
    q.decay = 0.999999  # look at the initialisation, not the update
    q(pts.t()[None, :, None, :])
    found = sorted(q.embedding.tolist())
    assert torch.allclose(torch.tensor(found), centres, atol=0.1)


def test_data_init_takes_codes_from_the_first_batch():
    z = torch.randn(1, 3, 4, 4)
    q = VectorQuantizer(5, 3, init="data", codebook="loss", restart_threshold=0).train()
    assert not bool(q.initialized)
    q(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 3)
    assert bool(q.initialized)
    assert all(any(torch.equal(e, r) for r in rows) for e in q.embedding.detach())


def test_vqvae_shapes_and_ranges():
    net = VQVAE(hidden=8, res_hidden=4, res_blocks=1, code_dim=4, num_codes=16, init="data")
    x = torch.rand(2, 3, 64, 64)
    out = net(x)
    assert out["reconstruction"].shape == x.shape and out["indices"].shape == (2, 32, 32)
    assert net.encode(x).shape == (2, 4, 32, 32)
    net.eval()
    codes = net.codes(x)
    assert codes.shape == (2, 32, 32) and int(codes.max()) < 16
    img = net.decode_indices(codes)
    assert img.shape == x.shape and float(img.min()) >= 0 and float(img.max()) <= 1
    assert torch.equal(net.reconstruct(x), img)


def test_psnr_and_compression():
    x = torch.full((1, 3, 4, 4), 0.5)
    assert float(psnr(x, x + 0.1)) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert compression(512)["ratio"] == pytest.approx(64 * 64 * 3 * 8 / (32 * 32 * 9))
    assert compression(128) == {"image_bits": 98304, "code_bits": 7168.0, "ratio": pytest.approx(98304 / 7168)}
