"""FID/KID: pytorch-fid equivalence, closed forms, the stats cache, and user-facing errors.

No network: the FID Inception network gets a seeded random state dict (the real weights are
not available here), injected into genlab through a weights file and into pytorch-fid by
replacing the loader it downloads with.
"""

from __future__ import annotations

import warnings

# pytorch-fid is a hard dependency (pyproject.toml): a missing install fails here, it is not skipped
import numpy as np
import pytest
import pytorch_fid.fid_score
import pytorch_fid.inception
import torch
import torchvision
from PIL import Image

from genlab.errors import GenlabError
from genlab.eval import features as F
from genlab.eval.fid import (
    FIDEvaluator,
    Stats,
    cached_stats,
    fid_between,
    fid_cli,
    fid_from_stats,
    format_result,
    frechet_distance,
)
from genlab.eval.kid import kid, polynomial_mmd2

torch.set_num_threads(2)


def _random_fid_state_dict(seed: int = 123) -> dict:
    """Every tensor of the FID network's state dict filled with seeded, well-scaled random values."""
    template = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in template.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = 0.1 * torch.randn(value.shape, generator=gen)
        elif value.dim() == 1:  # BatchNorm scale
            out[key] = 1 + 0.1 * torch.randn(value.shape, generator=gen)
        else:  # conv / linear weights, He scale so activations neither explode nor vanish
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return out


@pytest.fixture(scope="module")
def state_dict():
    return _random_fid_state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, state_dict):
    path = tmp_path_factory.mktemp("weights") / F.FID_WEIGHTS_FILE
    torch.save(state_dict, path)
    return path


@pytest.fixture
def pfid_weights(monkeypatch, state_dict):
    """pytorch-fid builds its network with our random weights instead of downloading."""
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", lambda *a, **k: state_dict)


def _write_folder(folder, n, seed, size=(40, 48), bright=0.0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]] / max(size)
    for i in range(n):
        freq = rng.uniform(1, 6, size=3)
        base = 0.5 + 0.4 * np.sin(2 * np.pi * (freq[:, None, None] * xx + rng.uniform(0, 1, (3, 1, 1)) * yy * 3))
        img = np.clip(base + bright + 0.15 * rng.standard_normal((3, *size)), 0, 1)
        ext = "png" if i % 4 else "jpg"  # both extensions, like pytorch-fid reads them
        Image.fromarray((img.transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / f"{i:03d}.{ext}")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    return (_write_folder(root / "a", 16, seed=1), _write_folder(root / "b", 16, seed=2, bright=0.15))


@pytest.fixture(scope="module")
def small_folders(tmp_path_factory):
    # The full 2048-d network costs ~1 CPU-second per image: keep this one tiny.
    root = tmp_path_factory.mktemp("small")
    return (_write_folder(root / "a", 5, seed=3), _write_folder(root / "b", 5, seed=4, bright=0.15))


@pytest.fixture(scope="module")
def ex64(weights_file):
    """The cheap first block (64-d) of the FID network with the random weights."""
    return F.inception_extractor(weights_file, dims=64, device="cpu")


@pytest.fixture(scope="module")
def stats64(folders, ex64):
    return [Stats.from_features(F.features_from_folder(ex64, f), ex64) for f in folders]


# ----------------------------------------------------------------------------- pytorch-fid equivalence

def test_fid_matches_pytorch_fid(pfid_weights, weights_file, folders):
    a, b = folders
    ours = fid_between(a, b, weights=weights_file, dims=64, batch_size=50, device="cpu")
    ref = pytorch_fid.fid_score.calculate_fid_given_paths([str(a), str(b)], 50, "cpu", 64, num_workers=0)
    assert ref > 1.0  # the two folders do differ, so the comparison means something
    assert ours.value == pytest.approx(ref, rel=1e-3)
    assert (ours.n_a, ours.n_b, ours.dims, ours.comparable) == (16, 16, 64, True)
    assert F.FID_WEIGHTS_FILE in ours.extractor


def test_2048_statistics_match_pytorch_fid(pfid_weights, weights_file, small_folders):
    # The full network, compared at the statistics: sqrtm of a 2048x2048 product alone costs
    # ~80 CPU-seconds, and it is checked against pytorch-fid separately (smaller dims) below.
    folder = small_folders[0]
    ex = F.inception_extractor(weights_file, dims=2048, device="cpu")
    ours = Stats.from_features(F.features_from_folder(ex, folder), ex)
    model = pytorch_fid.inception.InceptionV3([3])
    mu, sigma = pytorch_fid.fid_score.compute_statistics_of_path(str(folder), model, 50, 2048, "cpu", 0)
    assert np.abs(mu).max() > 1e-3  # non-trivial features
    np.testing.assert_allclose(ours.mu, mu, rtol=1e-5, atol=1e-6 * np.abs(mu).max())
    # genlab's forward runs in channels_last (pytorch-fid's in NCHW): float round-off of ~1e-6 per
    # feature, so near-zero covariances of 5 images differ by a few 1e-6 of the largest one.
    np.testing.assert_allclose(ours.sigma, sigma, rtol=1e-4, atol=1e-5 * np.abs(sigma).max())


def test_tensors_equal_png_round_trip(tmp_path, ex64):
    # In-memory [0,1] tensors must give what saving them as PNG (torchvision's save_image) and
    # reading the folder gives: same uint8 quantisation, same features, same FID.
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(12, 3, 36, 36, generator=gen)
    fake = (torch.rand(12, 3, 36, 36, generator=gen) * 0.8 + 0.1).clamp(0, 1)
    for name, batch in (("real", real), ("fake", fake)):
        (tmp_path / name).mkdir()
        for i, img in enumerate(batch):
            torchvision.utils.save_image(img, tmp_path / name / f"{i:03d}.png")
    ex = ex64
    from_pngs = F.features_from_folder(ex, tmp_path / "real")
    from_tensors = F.features_from_tensors(ex, [real[:5], real[5:]], batch_size=7)  # odd batching on purpose
    np.testing.assert_allclose(from_tensors, from_pngs, rtol=1e-5, atol=1e-6)
    # Without quantisation the features would differ, so the check above is not vacuous.
    unquantised = ex.model(real[:7])[0].mean((2, 3)).detach().numpy()
    assert not np.allclose(unquantised, from_pngs[:7], rtol=1e-5, atol=1e-6)

    evaluator = FIDEvaluator(ex, Stats.from_features(from_tensors, ex))
    result = evaluator(fake)
    folder_result = fid_between(tmp_path / "real", tmp_path / "fake", extractor=ex)
    assert result.value == pytest.approx(folder_result.value, rel=1e-6)
    assert result.kid_mean == pytest.approx(folder_result.kid_mean, rel=1e-6)


def test_gan_range_is_rejected(ex64):
    with pytest.raises(GenlabError, match=r"\(x \+ 1\) / 2"):
        ex64(torch.rand(2, 3, 8, 8) * 2 - 1)


# ----------------------------------------------------------------------------- the distances

def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    # Same Gaussian: zero. Pure mean shift: the squared shift.
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(mu1, np.diag(v1), mu1 + 2, np.diag(v1)) == pytest.approx(4 * d, rel=1e-10)


def _exact_fid_from_samples(x, y):
    """FID of the samples' Gaussians without any matrix square root: with S1 = A^T A, S2 = B^T B
    (A, B the centred samples / sqrt(N - 1)), the eigenvalues of S1 S2 are the squared singular
    values of A B^T, so Tr(sqrt(S1 S2)) is its nuclear norm (an N x N SVD, exact also when N < dims)."""
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear)


def _feature_like_samples(rng, n, d):
    """Two correlated, non-negative (post-ReLU-like) sample sets with a decaying spectrum."""
    mix = rng.standard_normal((d, d)) * (np.arange(1, d + 1) ** -0.5)[:, None]
    x = np.maximum(rng.standard_normal((n, d)) @ mix, 0)
    y = np.maximum(1.1 * rng.standard_normal((n, d)) @ mix + 0.05, 0)
    return x, y


def _stats(x, y):
    return x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)


def test_frechet_distance_rotated_closed_form():
    """Commuting covariances Q diag(a) Q^T, Q diag(b) Q^T: FID = |mu1-mu2|^2 + sum (sqrt a - sqrt b)^2,
    also with zero variances (singular covariances)."""
    rng = np.random.default_rng(2)
    d = 64
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    for zeros in (0, 20):
        a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
        a[:zeros] = 0
        b[d - zeros:] = 0
        s1, s2 = (q * a) @ q.T, (q * b) @ q.T
        expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9 * np.trace(s1))


def test_frechet_distance_full_rank_matches_pytorch_fid():
    rng = np.random.default_rng(1)
    for d in (32, 128):
        x, y = rng.standard_normal((4 * d, d)), rng.standard_normal((4 * d, d)) * 1.3 + 0.2
        args = _stats(x, y)
        ref = pytorch_fid.fid_score.calculate_frechet_distance(*args)
        assert frechet_distance(*args) == pytest.approx(ref, rel=1e-9)
        assert frechet_distance(*args) == pytest.approx(_exact_fid_from_samples(x, y), rel=1e-9)
        # full random covariances (not sample estimates), well conditioned
        g1, g2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
        s1, s2 = g1 @ g1.T / d + 0.5 * np.eye(d), g2 @ g2.T / d + 0.5 * np.eye(d)
        ref = pytorch_fid.fid_score.calculate_frechet_distance(x.mean(0), s1, y.mean(0), s2)
        assert frechet_distance(x.mean(0), s1, y.mean(0), s2) == pytest.approx(ref, rel=1e-9)


def test_frechet_distance_small_singular_is_exact():
    """N = 20 < 32 dims: the eigenvalue route matches the exact value to round-off; scipy's sqrtm
    route (pytorch-fid) is itself ~1e-8 off here, so it is held to 1e-6."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 32)), rng.standard_normal((20, 32)) * 1.3 + 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frechet_distance(*_stats(x, y))
    assert value == pytest.approx(_exact_fid_from_samples(x, y), rel=1e-12)
    assert value == pytest.approx(pytorch_fid.fid_score.calculate_frechet_distance(*_stats(x, y)), rel=1e-6)


def test_frechet_distance_singular_2048_matches_scipy_route():
    """The study's case: 2048-d statistics from N = 1000 images, both covariances of rank 999.
    Real, finite, no warning; exact to 1e-12 relative (vs the nuclear norm) and within 1e-6 of
    scipy's sqrtm route (pytorch-fid's `calculate_frechet_distance`, itself ~6e-7 off the exact
    value on these inputs)."""
    rng = np.random.default_rng(0)
    x, y = _feature_like_samples(rng, 1000, 2048)
    args = _stats(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frechet_distance(*args)
    assert isinstance(value, float) and np.isfinite(value)
    assert value == pytest.approx(_exact_fid_from_samples(x, y), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's sqrtm: singular-matrix / deprecated-argument warnings
        ref = pytorch_fid.fid_score.calculate_frechet_distance(*args)
    assert value == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_non_finite_statistics_are_an_error():
    with pytest.raises(GenlabError, match="NaN"):
        frechet_distance(np.zeros(3), np.full((3, 3), np.nan), np.zeros(3), np.eye(3))


def test_frechet_distance_dims_mismatch():
    with pytest.raises(GenlabError, match="--dims"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _mmd2_brute_force(x, y):
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1) ** 3  # noqa: E731
    m = len(x)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_against_brute_force():
    rng = np.random.default_rng(2)
    fa, fb = rng.standard_normal((30, 6)), rng.standard_normal((25, 6)) + 0.5
    assert polynomial_mmd2(fa[:12], fb[:12]) == pytest.approx(_mmd2_brute_force(fa[:12], fb[:12]), rel=1e-10)
    # kid(): subsets drawn with numpy's default_rng(seed), a-side then b-side, per subset.
    mean, std = kid(fa, fb, subset_size=12, subsets=5, seed=7)
    sub = np.random.default_rng(7)
    brute = []
    for _ in range(5):
        ia, ib = sub.choice(30, 12, replace=False), sub.choice(25, 12, replace=False)
        brute.append(_mmd2_brute_force(fa[ia], fb[ib]))
    assert (mean, std) == pytest.approx((np.mean(brute), np.std(brute)), rel=1e-9)
    assert mean > 0.05  # shifted distributions are told apart


@pytest.mark.parametrize("subset", [25, 40, 1])
def test_kid_subset_size_validated(subset):
    rng = np.random.default_rng(3)
    with pytest.raises(GenlabError, match=rf"subset size {subset} .*N = 30 and 25"):
        kid(rng.standard_normal((30, 4)), rng.standard_normal((25, 4)), subset_size=subset)


# ----------------------------------------------------------------------------- weights resolution

def test_missing_weights_error_names_file_url_and_place(tmp_path, monkeypatch):
    monkeypatch.delenv("GENLAB_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(GenlabError) as err:
        F.inception_extractor(device="cpu")
    msg = str(err.value)
    hub_file = str(tmp_path / "hub" / "checkpoints" / F.FID_WEIGHTS_FILE)
    assert hub_file in msg and F.FID_WEIGHTS_URL in msg and "--weights" in msg
    assert "GENLAB_OFFLINE is set" in msg and "genlab data download inception" in msg

    monkeypatch.setenv("GENLAB_FID_WEIGHTS", str(tmp_path / "env.pth"))
    with pytest.raises(GenlabError, match=r"env\.pth \(\$GENLAB_FID_WEIGHTS\)"):
        F.resolve_weights()
    with pytest.raises(GenlabError, match=r"mine\.pth \(the weights="):
        F.resolve_weights(tmp_path / "mine.pth")


def test_weights_resolution_order(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / F.FID_WEIGHTS_FILE).write_bytes(b"x")
    (tmp_path / "env.pth").write_bytes(b"x")
    (tmp_path / "arg.pth").write_bytes(b"x")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.delenv("GENLAB_FID_WEIGHTS", raising=False)
    assert F.resolve_weights() == hub / "checkpoints" / F.FID_WEIGHTS_FILE
    monkeypatch.setenv("GENLAB_FID_WEIGHTS", str(tmp_path / "env.pth"))
    assert F.resolve_weights() == tmp_path / "env.pth"
    assert F.resolve_weights(tmp_path / "arg.pth") == tmp_path / "arg.pth"


def test_bad_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(GenlabError, match=r"bad\.pth does not fit pytorch-fid"):
        F.inception_extractor(bad, dims=64, device="cpu")
    (tmp_path / "html.pth").write_text("<html>404</html>")
    with pytest.raises(GenlabError, match=r"cannot read FID weights .*html\.pth"):
        F.inception_extractor(tmp_path / "html.pth", dims=64, device="cpu")


# ----------------------------------------------------------------------------- stats cache and files

def test_stats_cache_reuse_and_invalidation(tmp_path, monkeypatch, weights_file, ex64):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    ex = ex64
    images = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    calls = []

    def source():
        calls.append(1)
        return [images[:3], images[3:]]

    first = cached_stats(ex, source, "toy-v1", n=4)
    assert len(calls) == 1 and first.n == 4 and first.features.shape == (4, 64)
    files = list((tmp_path / "cache" / "fid").glob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "cache" / "fid").glob(".*tmp"))  # atomic, no leftovers

    again = cached_stats(ex, source, "toy-v1", n=4)
    assert len(calls) == 1  # served from the cache: the data was not touched
    np.testing.assert_array_equal(again.sigma, first.sigma)

    for changed in (dict(dataset_id="toy-v2", n=4), dict(dataset_id="toy-v1", n=5),
                    dict(dataset_id="toy-v1", n=4, transform="resize64")):
        cached_stats(ex, source, **changed)
    ex192 = F.inception_extractor(weights_file, dims=192, device="cpu")
    cached_stats(ex192, source, "toy-v1", n=4)
    assert len(calls) == 5 and len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 5

    # A damaged cache file is recomputed, not fatal.
    files[0].write_bytes(b"garbage")
    cached_stats(ex, source, "toy-v1", n=4)
    assert len(calls) == 6

    # The file is a pytorch-fid statistics file too.
    mu, sigma = pytorch_fid.fid_score.compute_statistics_of_path(str(files[0]), None, 50, 64, "cpu")
    np.testing.assert_allclose(mu, first.mu)
    np.testing.assert_allclose(sigma, first.sigma)

    with pytest.raises(GenlabError, match="only 6 images .*n=20"):
        cached_stats(ex, source, "toy-v1", n=20)


def test_npz_inputs_like_pytorch_fid(tmp_path, folders, ex64, stats64):
    a, b = folders
    stats_a, stats_b = stats64
    direct = fid_from_stats(stats_a, stats_b, 64, ex64)
    # A plain pytorch-fid file (mu/sigma only) against a genlab file: no network needed at all.
    np.savez_compressed(tmp_path / "a_pfid.npz", mu=stats_a.mu, sigma=stats_a.sigma)
    stats_b.save(tmp_path / "b.npz")
    via_npz = fid_between(tmp_path / "a_pfid.npz", tmp_path / "b.npz", weights=tmp_path / "absent.pth")
    assert via_npz.value == pytest.approx(direct.value, rel=1e-9)
    assert via_npz.n_a is None and via_npz.n_b == 16 and via_npz.kid_mean is None
    assert via_npz.extractor == ex64.label
    # genlab files keep features (so KID) and the extractor id, which guards against mixing.
    stats_a.save(tmp_path / "a.npz")
    both = fid_between(tmp_path / "a.npz", tmp_path / "b.npz")
    assert both.kid_mean == pytest.approx(direct.kid_mean) and both.n_a == 16
    other = F.FeatureExtractor(ex64.model, 64, "something-else", "other", True, ex64.device)
    with pytest.raises(GenlabError, match=r"a\.npz was computed with another feature extractor"):
        fid_between(tmp_path / "a.npz", b, extractor=other)
    with pytest.raises(GenlabError, match=r"holds 64-d statistics .*--dims 64"):
        fid_between(tmp_path / "a.npz", b, extractor=F.FeatureExtractor(ex64.model, 192, "x", "x", True, ex64.device))
    with pytest.raises(GenlabError, match="FID input not found"):
        fid_between(tmp_path / "nope", b, extractor=ex64)
    with pytest.raises(GenlabError, match="no images in"):
        (tmp_path / "empty").mkdir()
        fid_between(tmp_path / "empty", b, extractor=ex64)


# ----------------------------------------------------------------------------- fallback extractor

def test_fallback_extractor_is_labelled_seeded_and_calibrated(folders):
    a, b = folders
    real = F.load_folder(a)
    ex = F.fallback_extractor(real[:8], seed=3, dims=64, device="cpu")
    assert not ex.comparable and "NOT comparable" in ex.label
    assert "seed=3" in ex.id and "calib=" in ex.id
    # Same seed and calibration: same id, same features; another seed or calibration set: another id.
    again = F.fallback_extractor([real[:3], real[3:8]], seed=3, dims=64, device="cpu")
    assert again.id == ex.id
    np.testing.assert_allclose(again(real[8:11]), ex(real[8:11]), rtol=1e-4, atol=1e-5)
    assert F.fallback_extractor(real[:8], seed=4, dims=64, device="cpu").id != ex.id
    assert F.fallback_extractor(real[8:16], seed=3, dims=64, device="cpu").id != ex.id
    # BatchNorm was calibrated on the real images, not left at its defaults (mean 0, var 1), then
    # folded into the convolution: a bias from the calibrated mean (He init has none, BatchNorm's
    # shift is 0) and the He weights rescaled by the calibrated variance.
    conv = ex.model.blocks[0][0].conv
    assert conv.bias is not None and conv.bias.abs().sum() > 0
    he = F.he_state_dict(3)["Conv2d_1a_3x3.conv.weight"]
    ratio = (conv.weight.detach().flatten(1).norm(dim=1) / he.flatten(1).norm(dim=1))
    assert not torch.allclose(ratio, torch.ones_like(ratio), rtol=1e-2)

    result = fid_cli(a, b, dims=64, device="cpu", fallback=True)
    assert not result.comparable and result.value > 0 and result.n_a == result.n_b == 16
    text = format_result(result)
    assert "NOT comparable" in text and text.splitlines()[-1] == f"FID:  {result.value}"


def test_fid_result_records_everything(stats64, ex64):
    stats_a, stats_b = stats64
    same = fid_from_stats(stats_a, stats_a, 64, ex64)
    assert same.value == pytest.approx(0, abs=1e-3 * np.trace(stats_a.sigma))
    d = fid_from_stats(stats_a, stats_b, 64, ex64).as_dict()
    assert {"value", "n_a", "n_b", "dims", "extractor", "extractor_id", "comparable", "kid_mean"} <= set(d)
    assert d["n_a"] == d["n_b"] == 16 and d["kid_subset_size"] == 8 and d["kid_mean"] > 0


def test_the_one_dims_list_is_pytorch_fids():
    from genlab.defaults import FID, FID_DIMS

    assert FID_DIMS == tuple(pytorch_fid.inception.InceptionV3.BLOCK_INDEX_BY_DIM) and FID["dims"] in FID_DIMS
