"""Improved precision and recall (genlab.eval.precision_recall) against brute force and known cases."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.eval.precision_recall import inside_manifold, knn_radii, precision_recall


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al.'s definition written out with Python loops."""
    def radii(points):
        out = []
        for i, p in enumerate(points):
            d = sorted(float(np.linalg.norm(p - q)) for j, q in enumerate(points) if j != i)
            out.append(d[k - 1])
        return out

    def covered(queries, support):
        r = radii(support)
        return [any(np.linalg.norm(q - s) <= r[j] for j, s in enumerate(support)) for q in queries]

    return float(np.mean(covered(fake, real))), float(np.mean(covered(real, fake)))


def test_hand_computed_1d():
    # real {0, 1, 5}, k = 1: radii 1, 1, 4. fake {0.5, 2.5, 9.5, 20}: 0.5 (ball of 0) and 2.5
    # (ball of 5) are inside, 9.5 and 20 are not -> precision 1/2. Fake radii, k = 1: 2, 2, 7, 10.5:
    # 0 and 1 lie within 2 of 0.5, 5 within 7 of 9.5 -> recall 1.
    real = np.array([[0.0], [1.0], [5.0]])
    fake = np.array([[0.5], [2.5], [9.5], [20.0]])
    np.testing.assert_allclose(knn_radii(real, k=1), [1, 1, 4])
    np.testing.assert_allclose(knn_radii(fake, k=1), [2, 2, 7, 10.5])
    pr = precision_recall(real, fake, k=1)
    assert (pr.precision, pr.recall) == (0.5, 1.0)
    assert (pr.n_real, pr.n_fake, pr.k) == (3, 4, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(40, 5))
    fake = rng.normal(loc=0.7, scale=1.3, size=(33, 5))
    pr = precision_recall(real, fake, k=3, block=7)  # a small block: several blocks per matrix
    p, r = brute_force(real, fake, 3)
    assert pr.precision == pytest.approx(p, abs=1e-12)
    assert pr.recall == pytest.approx(r, abs=1e-12)
    assert 0 < pr.precision < 1 and 0 < pr.recall < 1  # the case is not trivial


def test_identical_sets_score_one_and_far_sets_zero():
    x = np.random.default_rng(3).normal(size=(50, 16)) * 10
    pr = precision_recall(x, x.copy())
    assert (pr.precision, pr.recall) == (1.0, 1.0)
    far = precision_recall(x, x + 1000.0)
    assert (far.precision, far.recall) == (0.0, 0.0)


def test_mode_collapse_keeps_precision_loses_recall():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(200, 8))
    collapsed = real[:5].repeat(40, axis=0) + rng.normal(scale=1e-3, size=(200, 8))  # 5 modes, 40 copies each
    pr = precision_recall(real, collapsed)
    assert pr.precision == 1.0
    # a fake ball around a collapsed cluster has a tiny radius: only the 5 source points are covered
    assert pr.recall == pytest.approx(5 / 200)


def test_inside_manifold_boundary_counts():
    support = np.array([[0.0, 0.0]])
    assert inside_manifold(np.array([[3.0, 4.0], [3.0, 4.1]]), support, np.array([5.0])).tolist() == [True, False]


def test_errors_are_one_line():
    with pytest.raises(GenlabError, match="more than k"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(GenlabError, match="dims differ"):
        precision_recall(np.zeros((10, 2)), np.ones((10, 3)))
    with pytest.raises(GenlabError, match="NaN"):
        precision_recall(np.full((10, 2), np.nan), np.ones((10, 2)))


def test_a_generator_stuck_at_the_feature_mean_keeps_full_precision_in_high_dimension():
    # A known limit of the k-NN manifold (seen on the study's grey DCGAN samples, benchmarks/RESULTS.md):
    # in 2048-d, real points lie ~sqrt(d) from their mean but ~sqrt(2d) from each other, so the mean
    # falls inside every real point's ball. Recall (0) is what shows the collapse.
    rng = np.random.default_rng(0)
    real = rng.normal(size=(250, 2048))
    pr = precision_recall(real, rng.normal(scale=0.01, size=(250, 2048)))
    assert (pr.precision, pr.recall) == (1.0, 0.0)
