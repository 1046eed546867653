"""One real CPU training run of a tiny VQ-VAE on fake images, then the code-map dataset, one
training step of each prior, the prior comparison table, the CLI commands and the K sweep."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from genlab.cli import main
from genlab.config import load_config
from genlab.data import registry
from genlab.eval.features import FeatureExtractor
from genlab.eval.fid import FIDEvaluator, Stats

TINY = ["model.hidden=8", "model.res_hidden=4", "model.res_blocks=1", "model.code_dim=4", "model.num_codes=8",
        "model.init=data", "data.image_size=16", "data.batch_size=8", "data.subset=null", "data.val_fraction=0.25",
        "trainer.max_epochs=1", "trainer.progress_bar=false", "trainer.accelerator=cpu",
        "model.priors.gmm.components=2", "model.priors.gmm.pca_dim=3",
        "model.priors.vae.epochs=1", "model.priors.vae.latent_dim=4", "model.priors.vae.hidden=8",
        "model.priors.vae.embed_dim=4", "model.priors.pixelcnn.epochs=1", "model.priors.pixelcnn.hidden=8",
        "model.priors.pixelcnn.layers=2", "model.priors.eval_samples=6"]


class FakeImages(Dataset):
    """Smooth random colour fields with file-like ids, like the image loader's datasets."""

    def __init__(self, n: int, size: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(n, 3, 4, 4, generator=g)
        self.images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        self.files = [f"class{i % 3}/img_{seed}_{i}.JPEG" for i in range(n)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


def fake_builder(cfg, split, seed):
    return FakeImages(24 if split == "train" else 10, cfg.image_size, seed=0 if split == "train" else 1)


class MeanColour(torch.nn.Module):
    """A cheap stand-in for Inception: 3-d features (mean RGB), shaped like its pooled output."""

    def forward(self, x):
        return [x.mean((2, 3), keepdim=True)]


def fake_feature_evaluator(cfg, real, dataset_id):
    ext = FeatureExtractor(MeanColour(), 3, id="mean-rgb", label="mean RGB (test stand-in)", comparable=False,
                           device=torch.device("cpu"))
    return FIDEvaluator(ext, Stats.from_features(ext(real), ext))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and far faster on a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.BUILDERS, "tinyimagenet", fake_builder)
        mp.setattr("genlab.eval.priors.feature_evaluator", fake_feature_evaluator)
        root = tmp_path_factory.mktemp("vqvae")
        yield root
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained(env):
    from genlab.train.runner import train

    cfg = load_config("vqvae-tinyimagenet-quick", TINY + [f"output.runs_dir={env}", "output.run_name=run"])
    return train(cfg)


def test_training_logs_quality_and_writes_artefacts(trained):
    run = trained
    assert run.status()["status"] == "finished"
    header = run.metrics_path.read_text().splitlines()[0].split(",")
    for key in ("val/mse", "val/psnr", "val/perplexity", "val/usage", "train/usage", "train/psnr_epoch"):
        assert key in header, key
    comp = json.loads((run.eval / "compression.json").read_text())
    assert comp["image_bits"] == 16 * 16 * 3 * 8 and comp["code_bits"] == 8 * 8 * 3  # log2(8) = 3 bits a code
    assert comp["ratio"] == pytest.approx(32.0)
    recon = Image.open(run.reconstructions / "epoch_000.png")
    assert recon.size == (10 * 18 + 2, 2 * 18 + 2)  # a row of 10 originals above their reconstructions
    assert run.best_checkpoint.is_file()


def test_code_maps_hold_the_models_codes_and_the_image_ids(trained):
    from genlab.eval.codes import load_code_maps, write_code_maps

    write_code_maps(trained.path)
    codes = load_code_maps(trained.path)
    assert codes.indices.dtype == np.uint16 and codes.indices.shape == (34, 8, 8)
    assert list(codes.split).count("train") == 24 and list(codes.split).count("val") == 10
    assert codes.ids[0] == "class0/img_0_0.JPEG" and codes.ids[24] == "class0/img_1_0.JPEG"
    net = trained.load_model()
    val = FakeImages(10, 16, seed=1)
    assert np.array_equal(codes.indices[codes.split == "val"], net.codes(val.images).numpy())
    assert np.array_equal(codes.codebook, net.codebook.numpy())


def test_each_prior_trains_samples_and_is_compared(trained):
    from genlab.eval.codes import write_code_maps
    from genlab.eval.priors import evaluate_priors
    from genlab.train.prior_module import train_prior

    write_code_maps(trained.path)  # so the test does not depend on the one above having run
    for kind in ("gmm", "vae", "pixelcnn"):
        train_prior(trained.path, kind, progress=False)
        prior = trained.load_prior(kind)
        maps = prior.sample(3, generator=torch.Generator().manual_seed(0))
        assert maps.shape == (3, 8, 8) and int(maps.max()) < 8
    metrics = (trained.path / "priors" / "pixelcnn" / "metrics.csv").read_text()
    assert "val/bits_per_map" in metrics
    result = evaluate_priors(trained.path)
    rows = {r["prior"]: r for r in result["rows"]}
    assert set(rows) == {"uniform codes", "code frequencies", "reconstructions", "gmm", "vae",
                         "vae, mode per position", "pixelcnn"}
    assert rows["uniform codes"]["bits_per_map"] == pytest.approx(64 * 3)
    assert rows["gmm"]["bits_per_map"] is None and rows["pixelcnn"]["nll"] == "exact"
    assert rows["vae"]["bits_per_map"] > 0 and rows["pixelcnn"]["fd"] is not None
    assert (trained.samples / "prior_pixelcnn.png").is_file() and (trained.samples / "prior_vae_mode.png").is_file()
    assert rows["vae, mode per position"]["fd"] is not None
    assert "| pixelcnn |" in (trained.eval / "priors.md").read_text()


def test_cli_commands(trained, capsys):
    run = str(trained.path)
    assert main(["codes", run]) == 0
    assert main(["prior", run, "model.priors.gmm.covariance=full", "--kind", "gmm"]) == 0
    assert main(["prior-eval", run, "--kind", "gmm", "--n", "5"]) == 0
    out = capsys.readouterr().out
    assert "| gmm |" in out
    report = (trained.path / "report.html").read_text()
    assert "eval/priors.json" in report and "prior_gmm" in report  # the comparison table, the gmm grid
    assert main(["prior", run, "model.priors.vae.bad=1", "--kind", "vae"]) == 2
    assert "unknown key 'model.priors.vae.bad'" in capsys.readouterr().out


def test_prior_training_stops_at_its_time_budget_and_still_validates(trained):
    run = str(trained.path)
    assert main(["codes", run]) == 0
    assert main(["prior", run, "model.priors.pixelcnn.epochs=500", "--kind", "pixelcnn", "--max-minutes", "1e-4"]) == 0
    summary = json.loads((trained.path / "priors" / "pixelcnn" / "summary.json").read_text())
    assert 1 <= summary["steps"] and summary["epochs"] < 499  # the budget, not the 500 epochs, ended it
    assert summary["val_bits_per_map"] is not None  # the held-out maps were scored before stopping
    assert main(["prior", run, "--kind", "pixelcnn", "--max-minutes", "0"]) == 2


def test_prior_needs_code_maps_first(env, tmp_path):
    from genlab.errors import GenlabError
    from genlab.runs import Run
    from genlab.train.prior_module import train_prior

    cfg = load_config("vqvae-tinyimagenet-quick", TINY)
    run = Run(tmp_path / "r")
    run.prepare(cfg)
    with pytest.raises(GenlabError, match="genlab codes"):
        train_prior(run.path, "pixelcnn")


def test_sweep_writes_a_side_by_side_comparison(env):
    from genlab.train.vqvae_sweep import sweep_codes

    cfg = load_config("vqvae-tinyimagenet-sweep", TINY + [f"output.runs_dir={env}", "output.run_name=sweep"])
    root = sweep_codes(cfg, codes=[4, 16])
    table = json.loads((root / "comparison.json").read_text())["rows"]
    assert [r["K"] for r in table] == [4, 16]
    assert table[0]["ratio"] == pytest.approx(16 * 16 * 3 * 8 / (8 * 8 * 2))
    assert all(0 < r["usage"] <= 1 and r["psnr"] > 0 for r in table)
    grid = Image.open(root / "comparison.png")
    assert grid.size == (10 * 18 + 2, 3 * 18 + 2)  # originals + one row per K, 16 px images, padding 2
    assert (root / "grid_K16.png").is_file() and "| 16 |" in (root / "comparison.md").read_text()
