"""genlab.eval.pixel_scores: pixel diversity and coverage on closed-form cases, then on a tiny run."""

from __future__ import annotations

import json

import pytest
import torch
from tests.eval.test_gan_quality import folder, held_out_copycat, trained_run  # noqa: F401 (pytest fixtures)

from genlab.errors import GenlabError
from genlab.eval.pixel_scores import coverage, diversity, evaluate_pixel_scores, flatten, format_pixel_scores


def _real(n: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_identical_samples_have_no_diversity_and_cover_almost_nothing():
    real = _real()
    copies = real[:1].expand(50, -1, -1, -1)  # 50 copies of real image 0: it alone is covered
    assert diversity(copies, real) == 0.0
    assert coverage(copies, real) == 1 / len(real)
    assert coverage(torch.zeros_like(copies), real) == 0.0  # 50 black images cover nothing


def test_the_real_set_itself_scores_one_and_one():
    real = _real()
    assert diversity(real, real) == pytest.approx(1.0)
    assert coverage(real, real) == 1.0
    assert coverage(real.flip(0), real) == 1.0  # order does not matter


def test_diversity_scales_with_the_spread_and_ignores_the_mean():
    real = _real()
    centred = (real - 0.5) * 0.5 + 0.5  # half the spread around the grey image
    assert diversity(centred, real) == pytest.approx(0.5)
    assert diversity(real + 0.1, real) == pytest.approx(1.0)


def test_coverage_counts_exactly_the_real_images_a_sample_sits_next_to():
    real = _real(20)
    # samples: a copy of real image 3 nudged by a hair, and a far-away white image
    fake = torch.stack([real[3] + 1e-3, torch.ones_like(real[0]) * 10])
    assert coverage(fake, real) == pytest.approx(1 / 20)
    # brute force on a random case: nearest sample vs nearest other real, image by image
    fake = _real(15, seed=1)
    r, f = flatten(real), flatten(fake)
    covered = 0
    for i in range(len(r)):
        other = min(float((r[i] - r[j]).norm()) for j in range(len(r)) if j != i)
        covered += min(float((r[i] - s).norm()) for s in f) < other
    assert coverage(fake, real) == pytest.approx(covered / len(r))


def test_images_are_compared_at_32_pixels():
    real = _real()
    big = real.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 64x64, the same pictures
    assert torch.allclose(flatten(big), flatten(real))
    assert diversity(big, real) == pytest.approx(1.0) and coverage(big, real) == 1.0


def test_pixel_scores_of_a_run_are_written_and_a_copycat_scores_perfectly(trained_run, monkeypatch):  # noqa: F811
    s = evaluate_pixel_scores(trained_run, n=12, which="last")
    saved = json.loads((trained_run / "eval" / "pixel_scores.json").read_text())
    assert saved["diversity"] == s["diversity"] and saved["coverage"] == s["coverage"]
    assert (s["n_real"], s["n_fake"], s["size"], s["real_split"]) == (12, 12, 32, "holdout")
    assert 0 <= s["coverage"] <= 1 and s["diversity"] >= 0
    assert "pixel diversity:" in format_pixel_scores(s) and "coverage:" in format_pixel_scores(s)

    s = evaluate_pixel_scores(trained_run, n=12, model=held_out_copycat(trained_run), write=False)
    assert s["diversity"] == pytest.approx(1.0) and s["coverage"] == 1.0
    with pytest.raises(GenlabError, match="n >= 2"):
        evaluate_pixel_scores(trained_run, n=1)
