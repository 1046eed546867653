"""The sprite IoU search against a brute-force computation, and the run-level figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.data import dsprites
from genlab.eval import sprites as sq
from genlab.eval.aggregate_prior import LatentGMM, fit_aggregate_prior, load_aggregate_prior
from genlab.runs import Run


def small_set(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = np.stack([rng.integers(0, s, n) for s in dsprites.LATENT_SIZES], axis=1)
    return dsprites.render(classes)  # (n, 64, 64) in {0, 1}


def brute_force(images: np.ndarray, sprites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of every pair by Python loops over sets of pixel positions; the first best wins."""
    best, where = [], []
    for img in images:
        on = set(zip(*np.nonzero(img)))
        scores = []
        for s in sprites:
            son = set(zip(*np.nonzero(s)))
            scores.append(len(on & son) / len(on | son) if on | son else 1.0)
        best.append(max(scores))
        where.append(scores.index(max(scores)))
    return np.array(best), np.array(where)


def queries(spr: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    noisy = spr[:6].astype(bool) ^ (rng.random((6, 64, 64)) < 0.01)  # sprites with flipped pixels
    shifted = np.roll(spr[6:10].astype(bool), 3, axis=2)  # moved sprites: no exact match
    blobs = rng.random((3, 64, 64)) < 0.05
    empty = np.zeros((1, 64, 64), dtype=bool)
    exact = spr[[20, 21]].astype(bool)
    return np.concatenate([noisy, shifted, blobs, empty, exact])


@pytest.mark.parametrize("packed", [True, False])
def test_best_iou_matches_brute_force(packed):
    spr = small_set(120)
    spr[50] = spr[20]  # a duplicate sprite: the lower index must win the tie
    q = queries(spr)
    truth, truth_idx = brute_force(q, spr)
    data = np.packbits(spr, axis=-1) if packed else spr
    calls = []
    iou, idx = sq.best_iou(q, data, packed=packed, chunk=17, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_allclose(iou, truth, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(idx, truth_idx)
    assert iou[-2] == iou[-1] == 1.0 and idx[-2] == 20  # exact copies found, the tie to the first
    assert iou[-3] == 0.0  # the empty image
    assert calls[-1] == (120, 120) and len(calls) == 8  # ceil(120 / 17) chunks


def test_binarise_threshold_and_shapes():
    x = torch.tensor([0.2, 0.5, 0.51, 0.9]).view(1, 1, 2, 2)
    np.testing.assert_array_equal(sq.binarise(x), [[[False, False], [True, True]]])
    with pytest.raises(ValueError):
        sq.binarise(torch.zeros(1, 3, 2, 2))


def test_latent_gmm_samples_follow_the_fitted_mixture():
    rng = np.random.default_rng(0)
    a = rng.normal([4, 0, 0], [0.5, 1, 1], (3000, 3))
    b = rng.normal([-4, 2, 0], [1, 0.2, 1], (1000, 3))
    gmm = LatentGMM(2, "full").fit(np.concatenate([a, b]))
    z = gmm.sample(20000, torch.Generator().manual_seed(0)).numpy()
    assert torch.equal(gmm.sample(5, torch.Generator().manual_seed(3)), gmm.sample(5, torch.Generator().manual_seed(3)))
    right = z[:, 0] > 0
    assert abs(right.mean() - 0.75) < 0.02
    np.testing.assert_allclose(z[right].mean(0), [4, 0, 0], atol=0.05)
    np.testing.assert_allclose(z[~right].std(0), [1, 0.2, 1], rtol=0.05)
    diag = LatentGMM(2, "diag").fit(np.concatenate([a, b])).sample(20000, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(diag[diag[:, 0] > 0].std(0), [0.5, 1, 1], rtol=0.05)


def test_sprite_quality_on_a_tiny_run(tiny_cfg, monkeypatch, tmp_path):
    from genlab.train.runner import train

    spr = small_set(200)
    monkeypatch.setattr(dsprites, "load_all", lambda *a, **k: np.packbits(spr, axis=-1))
    run = train(tiny_cfg("model.sample_prior=standard"))
    res = sq.sprite_quality(run.path, n=12, seed=5, grid=tmp_path / "pairs.png")
    assert res["prior"] == "standard" and "standard" not in res and res["n"] == 12
    assert json.loads((run.eval / "sprite_quality.json").read_text()) == res
    # the same samples scored independently
    model = Run.open(run.path).load_model("best")
    images = model.sample(model.noise(12, torch.Generator().manual_seed(5)))
    b = images[:, 0].numpy() > 0.5
    truth, truth_idx = brute_force(b, spr)
    per_sample = np.load(run.eval / res["samples_file"])
    np.testing.assert_allclose(per_sample["standard_iou"], truth, atol=1e-12)
    np.testing.assert_array_equal(per_sample["standard_match"], truth_idx)
    assert res["mean_iou"] == pytest.approx(truth.mean())
    assert res["crisp_fraction"] == pytest.approx((truth >= sq.CRISP_IOU).mean()) and res["crisp_iou"] == 0.9
    assert res["shapes"] == sq.shape_shares(truth_idx, b.reshape(12, -1).sum(1))
    assert res["empty_fraction"] == pytest.approx((b.reshape(12, -1).sum(1) == 0).mean())
    assert (tmp_path / "pairs.png").is_file()

    # with an aggregate-posterior prior fitted, "auto" samples from it and N(0, I) is still reported
    info = fit_aggregate_prior(run.path, n_images=None, components=3, covariance="diag")
    assert info["fitted_on"] == 96
    res2 = sq.sprite_quality(run.path, n=12, seed=5)
    assert res2["prior"] == "aggregate-gmm"
    assert res2["standard"]["mean_iou"] == res["mean_iou"]
    z = load_aggregate_prior(Run.open(run.path)).sample(12, torch.Generator().manual_seed(5))
    b2 = model.sample(z)[:, 0].numpy() > 0.5
    np.testing.assert_allclose(np.load(run.eval / res2["samples_file"])["aggregate-gmm_iou"],
                               brute_force(b2, spr)[0], atol=1e-12)


def test_a_run_configured_for_the_aggregate_prior_gets_it_fitted(tiny_cfg, monkeypatch):
    from genlab.train.runner import train

    spr = small_set(50)
    monkeypatch.setattr(dsprites, "load_all", lambda *a, **k: np.packbits(spr, axis=-1))
    run = train(tiny_cfg("model.sample_prior=aggregate-gmm", "model.prior_components=2", "model.prior_images=40"))
    res = sq.sprite_quality(run.path, n=4, seed=0)
    assert res["prior"] == "aggregate-gmm" and "standard" in res
    gmm = load_aggregate_prior(Run.open(run.path))
    assert gmm.components == 2 and gmm.fitted_on == 40
    assert sq.sprite_quality(run.path, n=4, seed=0, prior="standard")["prior"] == "standard"


def test_shape_shares_count_the_matched_shapes_of_non_empty_samples():
    shape = dsprites.LATENT_NAMES.index("shape")
    classes = np.zeros((6, 6), dtype=np.int64)
    classes[:, shape] = [0, 1, 1, 2, 2, 2]  # a square, two ellipses, three hearts
    match = dsprites.classes_to_index(classes)
    on = np.array([5, 5, 5, 5, 5, 5])
    assert sq.shape_shares(match, on) == pytest.approx({"square": 1 / 6, "ellipse": 2 / 6, "heart": 3 / 6})
    # an empty sample matches nothing: its tie-broken match (index 0, a square) is not counted
    on[[1, 2]] = 0
    assert sq.shape_shares(match, on) == pytest.approx({"square": 0.25, "ellipse": 0.0, "heart": 0.75})
    assert sq.shape_shares(match, np.zeros(6)) == {"square": None, "ellipse": None, "heart": None}


def test_sprites_match_themselves_crisply_and_blobs_do_not():
    spr = small_set(60)
    blob = np.zeros((1, 64, 64), dtype=bool)
    yy, xx = np.mgrid[:64, :64]
    blob[0] = (yy - 32) ** 2 + (xx - 32) ** 2 < 8 ** 2  # a round blob: no sprite is a disc
    iou, match = sq.best_iou(np.concatenate([spr[:5].astype(bool), blob]), spr, packed=False)
    assert (iou[:5] >= sq.CRISP_IOU).all() and iou[5] < sq.CRISP_IOU
