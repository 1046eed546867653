"""Held-out images (data.holdout) and genlab.eval.gan_quality.evaluate_gan_quality on a real tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.eval.test_precision_recall import brute_force

from genlab.config import load_config
from genlab.data.images import holdout_positions, split_positions
from genlab.data.layouts import index_dataset
from genlab.data.registry import build_dataset
from genlab.errors import GenlabError
from genlab.eval.features import FeatureExtractor, features_from_tensors
from genlab.eval.fid import frechet_distance
from genlab.eval.gan_quality import QUALITY_KEYS, evaluate_gan_quality
from genlab.eval.kid import kid
from genlab.runs import Run

N_IMAGES = 40


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    root.mkdir()
    rng = np.random.default_rng(5)
    for i in range(N_IMAGES):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((16, 16), Image.BILINEAR).save(root / f"{i:03d}.png")
    return root


class _Tiny(torch.nn.Module):
    """A seeded conv + average pool: 8-d features, cheap enough for tests."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(123))
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return [torch.relu(self.conv(x * 2 - 1)).mean(dim=(2, 3), keepdim=True)]


def tiny_extractor() -> FeatureExtractor:
    return FeatureExtractor(_Tiny().eval(), 8, id="tiny-test", label="tiny test extractor", comparable=False,
                            device=torch.device("cpu"))


# --- the held-out split -------------------------------------------------------------------------
def test_holdout_is_disjoint_fixed_and_leaves_the_rest_alone(folder):
    index = index_dataset("folder", folder)
    held = split_positions(index, "holdout", 0.2, holdout=10)
    train, val = split_positions(index, "train", 0.2, holdout=10), split_positions(index, "val", 0.2, holdout=10)
    assert len(held) == 10 and len(set(held)) == 10
    assert not set(held) & set(train) and not set(held) & set(val) and not set(train) & set(val)
    assert sorted([*held, *train, *val]) == list(range(N_IMAGES))
    # the same images whatever the run's seed, validation fraction or subset
    assert np.array_equal(held, split_positions(index, "holdout", 0.5, subset=7, seed=9, holdout=10))
    assert np.array_equal(held, holdout_positions(N_IMAGES, 10))
    sub = split_positions(index, "all", subset=12, seed=3, holdout=10)
    assert len(sub) == 12 and not set(sub) & set(held)
    # without a holdout nothing changes: the subset is the one drawn before holdout existed
    old = np.sort(np.random.default_rng(3).choice(N_IMAGES, size=12, replace=False))
    assert np.array_equal(split_positions(index, "all", subset=12, seed=3), old)
    with pytest.raises(GenlabError, match="no held-out images"):
        split_positions(index, "holdout")
    with pytest.raises(GenlabError, match="leaves no images"):
        split_positions(index, "holdout", holdout=N_IMAGES)


def test_holdout_through_the_config(folder):
    cfg = load_config(None, ["data.name=folder", f"data.root={folder}", "data.channels=3", "data.image_size=16",
                             "data.holdout=10", "model.channels=[8,8]"]).data
    held, train = build_dataset(cfg, "holdout"), build_dataset(cfg, "train")
    assert len(held) == 10 and len(train) + len(build_dataset(cfg, "val")) == N_IMAGES - 10
    assert not set(held.files) & set(train.files)
    with pytest.raises(GenlabError, match="image datasets"):
        build_dataset(load_config(None, ["data.holdout=5"]).data, "train")


# --- evaluate_gan_quality -----------------------------------------------------------------------
@pytest.fixture
def trained_run(folder, tmp_path) -> Path:
    from genlab.train.runner import train

    cfg = load_config("dcgan-bitmoji-quick", [
        "data.name=folder", f"data.root={folder}", "data.image_size=16", "data.cache=false", "data.subset=null",
        "data.holdout=12", "data.batch_size=8", "model.g_width=4", "model.d_width=4", "model.latent_dim=8",
        "model.fid.every_n_epochs=0", "model.fid.final_n=0", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "trainer.accelerator=cpu", f"output.runs_dir={tmp_path / 'runs'}"])
    return train(cfg).path


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """FD of two feature sets (the distance itself is checked against scipy and pytorch-fid in test_fid.py;
    here the question is which images went in)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def test_quality_of_a_trained_run_against_independent_truth(trained_run):
    q = evaluate_gan_quality(trained_run, n=12, seed=0, which="last", extractor=tiny_extractor(), kid_subsets=200)
    assert set(QUALITY_KEYS) <= set(q)
    assert (q["n_real"], q["n_fake"], q["dims"], q["held_out"], q["real_split"]) == (12, 12, 8, True, "holdout")
    saved = json.loads((trained_run / "eval" / "quality.json").read_text())
    assert saved["fd"] == q["fd"] and saved["recall"] == q["recall"]

    # the truth, recomputed by hand: the held-out images in the seeded order, the model's
    # samples from the documented noise, features of both, their FD and the brute-force P/R
    run = Run.open(trained_run)
    held = build_dataset(run.config().data, "holdout")
    order = torch.randperm(len(held), generator=torch.Generator().manual_seed(0)).tolist()
    real = torch.stack([held[i][0] for i in order])
    model = run.load_model("last")
    z = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    fake = model.sample(z)
    ext = tiny_extractor()
    real_f, fake_f = features_from_tensors(ext, real), features_from_tensors(ext, fake)
    assert q["fd"] == pytest.approx(_frechet(real_f, fake_f), rel=1e-9)
    p, r = brute_force(real_f, fake_f, 3)
    assert (q["precision"], q["recall"]) == (pytest.approx(p), pytest.approx(r))
    # KID's standard error, against the spread it claims to measure: the KID of the same features
    # recomputed with 300 other subset seeds scatters around q["kid"] with a std of about q["kid_se"]
    # (200 subsets each: the se's own sampling error is ~5%, the empirical std's ~4%)
    kids = np.array([kid(real_f, fake_f, q["kid_subset_size"], 200, seed=s)[0] for s in range(1, 301)])
    assert q["kid_se"] == pytest.approx(kids.std(ddof=1), rel=0.2)
    assert abs(q["kid"] - kids.mean()) < 4 * kids.std()  # q["kid"] is one draw of the same estimate

    # the ids recorded are the held-out files, none of which the run trained or validated on
    ids = json.loads((trained_run / "eval" / "holdout.json").read_text())["ids"]
    assert sorted(ids) == sorted(Path(held.files[i]).name for i in order)
    seen = {Path(f).name for s in ("train", "val") for f in build_dataset(run.config().data, s).files}
    assert not set(ids) & seen


def held_out_copycat(run_dir):
    """A 'generator' whose samples are the run's held-out images: every score must call it perfect."""
    held = build_dataset(Run.open(run_dir).config().data, "holdout")
    images = torch.stack([held[i][0] for i in range(len(held))])

    class Copycat(torch.nn.Module):  # noise = which held-out images; sample = those images
        def noise(self, n, generator):
            return torch.randperm(len(images), generator=generator)[:n]

        def sample(self, idx):
            return images[idx]

    return Copycat()


def test_a_model_that_returns_the_held_out_images_scores_perfectly(trained_run, monkeypatch):
    copycat = held_out_copycat(trained_run)
    monkeypatch.setattr(Run, "load_model", lambda self, which="best", device="cpu": copycat)
    q = evaluate_gan_quality(trained_run, n=12, extractor=tiny_extractor(), write=False)
    assert (q["precision"], q["recall"]) == (1.0, 1.0)
    assert abs(q["fd"]) < 1e-6
    assert not (trained_run / "eval" / "quality.json").exists()


def test_cli_evaluate_quality(monkeypatch, capsys, tmp_path):
    from genlab import cli
    from genlab.eval import gan_quality, pixel_scores

    fake = {"fd": 12.5, "kid": 0.0123, "kid_se": 0.0004, "kid_subset_size": 150, "precision": 0.61, "recall": 0.42,
            "k": 3, "n_real": 300, "n_fake": 300, "extractor": "fallback: NOT comparable", "dims": 2048,
            "held_out": True, "real_split": "holdout", "comparable_to_published_fid": False}
    calls = []
    monkeypatch.setattr(gan_quality, "evaluate_gan_quality", lambda run, **kw: calls.append((run, kw)) or fake)
    pixels = {"diversity": 0.3, "real_diversity": 0.97, "coverage": 0.05, "real_coverage": 0.55, "n_fake": 300,
              "n_real": 300, "size": 32}
    monkeypatch.setattr(pixel_scores, "evaluate_pixel_scores", lambda run, **kw: calls.append((run, kw)) or pixels)
    assert cli.main(["evaluate", str(tmp_path), "--quality", "300", "--checkpoint", "last"]) in (0, None)
    out = capsys.readouterr().out
    assert calls == [(str(tmp_path), {"n": 300, "seed": 0, "which": "last"})] * 2
    for text in ("FD:        12.5", "0.0123 ± 0.0004", "precision: 0.610", "recall:    0.420", "300 generated vs 300",
                 "NOT comparable", "pixel diversity: 0.300 (held-out real faces: 0.970", "coverage:        0.050"):
        assert text in out
    calls.clear()
    cli.main(["evaluate", str(tmp_path), "--quality"])
    assert calls[0][1]["n"] == 1000
