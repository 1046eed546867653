"""GAN training: real CPU steps of each model, D steps per G step, the EMA generator, and a run end
to end through `genlab.train.runner.train` with the FID callback on a tiny feature extractor."""

from __future__ import annotations

import csv
import json

import lightning as L
import numpy as np
import pytest
import torch
from scipy import linalg
from torch.utils.data import DataLoader, TensorDataset

from genlab.config import load_config
from genlab.data import registry
from genlab.eval.features import FeatureExtractor
from genlab.train import fid_callback
from genlab.train.gan_module import GANModule
from genlab.train.runner import train

TINY = ["data.image_size=16", "model.g_width=4", "model.d_width=4", "model.latent_dim=8", "data.subset=null",
        "data.cache=false", "data.batch_size=16", "trainer.progress_bar=false", "trainer.accelerator=cpu"]


def fake_bitmoji(split: str) -> TensorDataset:
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = 48 if split == "train" else 12
    # smooth colour blobs, so the data has some structure
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=16, mode="bilinear")
    return TensorDataset(x, torch.zeros(n, dtype=torch.long))


@pytest.fixture
def gan_cfg(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))

    def make(model: str, *overrides: str):
        return load_config(f"{model}-bitmoji-quick", [*TINY, f"output.runs_dir={tmp_path / 'runs'}", *overrides])

    return make


class _Tiny(torch.nn.Module):
    """A seeded conv + average pool: 8-d features, cheap enough for tests."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(123)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return [torch.relu(self.conv(x * 2 - 1)).mean(dim=(2, 3), keepdim=True)]


def tiny_extractor() -> FeatureExtractor:
    return FeatureExtractor(_Tiny().eval(), 8, id="tiny-test", label="tiny test extractor", comparable=False,
                            device=torch.device("cpu"))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters only: BatchNorm running statistics move on every forward pass, steps or not."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


class Recorder(L.Callback):
    def __init__(self):
        self.states = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({"G": _snapshot(pl_module.net.generator), "D": _snapshot(pl_module.net.discriminator),
                            "ema": _snapshot(pl_module.net.ema_generator) if pl_module.net.ema_generator is not None else None})


def _fit(module: GANModule, batches: int, callbacks=()) -> None:
    data = DataLoader(fake_bitmoji("train"), batch_size=16)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=list(callbacks))
    trainer.fit(module, train_dataloaders=data)


@pytest.mark.parametrize("model", ["dcgan", "lsgan", "bigan"])
def test_one_training_step_updates_every_network(gan_cfg, model):
    torch.manual_seed(0)
    module = GANModule(gan_cfg(model, "model.fid.every_n_epochs=0", "model.fid.final_n=0"))
    before = {name: _snapshot(getattr(module.net, name)) for name in ("generator", "discriminator")}
    if model == "bigan":
        before["encoder"] = _snapshot(module.net.encoder)
    _fit(module, 1)
    for name, snap in before.items():
        assert _changed(snap, getattr(module.net, name)), f"{model}: {name} did not train"
    assert module.loss_kind == ("ls" if model == "lsgan" else "bce")
    with torch.no_grad():
        out = module.net.sample(module.net.noise(3, torch.Generator().manual_seed(0)))
    assert out.shape == (3, 3, 16, 16) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert module.net.has_encoder == (model == "bigan")


def test_d_steps_and_ema(gan_cfg):
    torch.manual_seed(0)
    module = GANModule(gan_cfg("dcgan", "model.d_steps=2", "model.ema=0.9", "model.fid.every_n_epochs=0",
                               "model.fid.final_n=0"))
    g0 = _snapshot(module.net.generator)
    rec = Recorder()
    _fit(module, 3, [rec])
    s0, s1, s2 = rec.states
    # batch 0: D only; batch 1: D and G; batch 2: D only
    assert all(torch.equal(g0[k], s0["G"][k]) for k in g0)
    assert any(not torch.equal(s0["G"][k], s1["G"][k]) for k in g0)
    assert all(torch.equal(s1["G"][k], s2["G"][k]) for k in g0)
    assert any(not torch.equal(s0["D"][k], s1["D"][k]) for k in s0["D"])
    # the first EMA update copies the generator
    for k, v in s1["G"].items():
        torch.testing.assert_close(s1["ema"][k], v)


def test_ema_average_matches_hand_computation(gan_cfg):
    torch.manual_seed(0)
    module = GANModule(gan_cfg("lsgan", "model.ema=0.9", "model.fid.every_n_epochs=0", "model.fid.final_n=0"))
    rec = Recorder()
    _fit(module, 2, [rec])
    g1, g2, ema2 = rec.states[0]["G"], rec.states[1]["G"], rec.states[1]["ema"]
    decay = min(0.9, (1 + 1) / (10 + 1))  # the warm-up ramp after one update
    for k in g1:
        torch.testing.assert_close(ema2[k], decay * g1[k] + (1 - decay) * g2[k])
    # samples come from the EMA copy
    z = module.net.noise(2, torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.net.sample(z), (module.net.ema_generator(z) + 1) / 2)
    assert int(module.ema_updates) == 2


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


def test_gan_run_end_to_end_with_fid(gan_cfg, monkeypatch):
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    cfg = gan_cfg("dcgan", "trainer.max_epochs=3", "trainer.log_every_n_steps=1", "model.fid.n=24", "model.fid.final_n=40",
                  "model.fid.batch_size=16", "model.diffaugment=color,translation,cutout")
    run = train(cfg)
    record = json.loads((run.eval / "fid.json").read_text())
    assert record["extractor"] == "tiny test extractor" and record["comparable_to_published_fid"] is False
    assert "NOT comparable" in record["note"]
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]
    assert all(h["n_real"] == 24 and h["n_fake"] == 24 for h in record["history"])
    assert record["final"]["n_fake"] == 40 and record["final"]["n_real"] == 40  # 48 training images
    best = min(record["history"], key=lambda h: h["fid"])
    assert record["best"] == best and record["final"]["epoch"] == best["epoch"]

    with open(run.metrics_path) as fh:
        rows = list(csv.DictReader(fh))
    logged = [float(r["fid"]) for r in rows if r.get("fid")]
    assert logged == pytest.approx([h["fid"] for h in record["history"]])
    assert any(r.get("train/g_loss_step") for r in rows) and any(r.get("train/d_loss_smooth") for r in rows)

    # best.ckpt is the epoch with the lowest FID, and its FID recomputes independently
    ckpt = torch.load(run.best_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == best["epoch"]
    last = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    assert last["epoch"] == 2  # written every epoch, whether or not the FID improved
    module = GANModule(cfg)
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    extractor = tiny_extractor()
    z = module.net.noise(24, torch.Generator().manual_seed(cfg.model.fid.seed + 1))
    fake = extractor(module.net.sample(z))
    train_set = fake_bitmoji("train")
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.model.fid.seed))[:24]
    real = extractor(train_set.tensors[0][order])
    assert _frechet(real.astype(np.float64), fake.astype(np.float64)) == pytest.approx(best["fid"], rel=1e-4)

    for name in ("epoch_000.png", "epoch_002.png"):
        assert (run.samples / name).is_file()
    assert (run.plots / "loss_curves.png").is_file() and (run.plots / "fid.png").is_file()
    assert run.status()["status"] == "finished"


def test_fid_n_larger_than_dataset_uses_every_image_and_says_so(gan_cfg, monkeypatch):
    # issue 13: a tiny training set gives a per-epoch FID on fewer real images, not a crash
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    with pytest.warns(UserWarning, match="model.fid.n=1000 but the training set has only 48 images"):
        run = train(gan_cfg("lsgan", "trainer.max_epochs=1", "model.fid.n=1000"))
    assert run.status()["status"] == "finished"


def test_pixel_scores_beside_every_fid_with_a_holdout(gan_cfg, monkeypatch):
    # issue 20: the curve of pixel diversity and coverage over training, on the held-out images
    from genlab.eval.pixel_scores import evaluate_pixel_scores

    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    run = train(gan_cfg("dcgan", "trainer.max_epochs=2", "model.fid.n=24", "model.fid.final_n=0",
                        "model.fid.every_n_epochs=1", "data.holdout=12"))
    history = json.loads((run.eval / "fid.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1]
    with open(run.metrics_path) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("pixel_diversity")]
    assert [float(r["pixel_diversity"]) for r in rows] == pytest.approx([h["pixel_diversity"] for h in history])
    assert [float(r["pixel_coverage"]) for r in rows] == pytest.approx([h["pixel_coverage"] for h in history])
    again = evaluate_pixel_scores(run.path, which="last", write=False)  # the last epoch's model, recomputed
    assert history[-1]["pixel_diversity"] == pytest.approx(again["diversity"], rel=1e-9)
    assert history[-1]["pixel_coverage"] == pytest.approx(again["coverage"], abs=1e-12)
    assert 0 < history[-1]["pixel_diversity"] and again["n_real"] == 12


def test_no_pixel_scores_without_a_holdout(gan_cfg, monkeypatch):
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    run = train(gan_cfg("dcgan", "trainer.max_epochs=1", "model.fid.n=24", "model.fid.final_n=0"))
    history = json.loads((run.eval / "fid.json").read_text())["history"]
    assert history and "pixel_diversity" not in history[0]
