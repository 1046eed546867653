"""TensorBoard logging (issue 16): a tiny run's event file, read back with tensorboard's own reader,
holds the scalars metrics.csv holds, the per-epoch image grids the run saved as PNGs, FID/KID for a
GAN, and the config as hparams."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

# tensorboard is a hard dependency (pyproject.toml): a missing install fails, it is not skipped
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tests.train.test_gan_training import TINY as GAN_TINY
from tests.train.test_gan_training import fake_bitmoji, tiny_extractor

from genlab.cli import main
from genlab.config import load_config
from genlab.data import registry
from genlab.train import fid_callback
from genlab.train.runner import train


def read_events(run_path):
    events = event_accumulator.EventAccumulator(str(run_path / "tensorboard"),
                                                size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def csv_column(run, key: str) -> list[float]:
    with open(run.metrics_path, newline="") as fh:
        return [float(r[key]) for r in csv.DictReader(fh) if r.get(key)]


def test_a_vae_run_writes_its_scalars_grids_and_config_to_tensorboard(tiny_cfg):
    run = train(tiny_cfg("trainer.log_every_n_steps=1"))
    events = read_events(run.path)
    tags = events.Tags()

    # scalars: every step and every epoch, the same values as metrics.csv
    for key in ("train/loss_step", "img_per_s", "train/loss_epoch", "val/elbo", "val/kl"):
        assert key in tags["scalars"], key
    for key in ("val/elbo", "train/loss_step", "train/kl_epoch"):
        logged = [e.value for e in events.Scalars(key)]
        assert logged == pytest.approx(csv_column(run, key), rel=1e-6), key
    assert len(events.Scalars("val/elbo")) == 2  # one per epoch
    assert "epoch" not in tags["scalars"]  # Lightning's epoch counter is metrics.csv's, not a curve

    # images: one sample grid and one reconstruction grid per epoch, the pictures saved in the run
    assert set(tags["images"]) == {"samples", "reconstructions (originals above)"}
    for tag, folder in (("samples", run.samples), ("reconstructions (originals above)", run.reconstructions)):
        logged = events.Images(tag)
        assert len(logged) == 2
        for epoch, event in enumerate(logged):
            shown = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"), dtype=int)
            saved = np.asarray(Image.open(folder / f"epoch_{epoch:03d}.png").convert("RGB"), dtype=int)
            assert shown.shape == saved.shape
            assert np.abs(shown - saved).max() <= 1  # uint8 rounding vs truncation
            assert shown.std() > 0  # a picture, not a blank
    assert events.Images("samples")[0].step < events.Images("samples")[1].step

    # the config as hparams (dotted keys), with the monitored metric named for the HParams tab
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    cfg = run.config()
    assert hparams["model.latent_dim"].number_value == cfg.model.latent_dim == 8
    assert hparams["model.name"].string_value == "vae"
    assert hparams["data.name"].string_value == "dsprites"
    assert hparams["model.channels"].string_value == str(cfg.model.channels)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["val/elbo"]
    assert not (run.path / "tensorboard" / "hparams.yaml").exists()  # config.yaml is the one record


def test_resuming_appends_to_the_same_tensorboard_folder(tiny_cfg):
    run = train(tiny_cfg("trainer.max_epochs=1"))
    train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    elbo = read_events(run.path).Scalars("val/elbo")
    assert len(elbo) == 2 and elbo[0].step < elbo[1].step
    assert [e.value for e in elbo] == pytest.approx(csv_column(run, "val/elbo"), rel=1e-6)


def test_genlab_runs_says_how_to_open_tensorboard(tiny_cfg, capsys):
    run = train(tiny_cfg("trainer.max_epochs=1"))
    capsys.readouterr()
    assert main(["runs", str(run.path.parent)]) == 0
    assert f"tensorboard --logdir {run.path.parent}" in capsys.readouterr().out


def test_tensorboard_can_be_turned_off(tiny_cfg):
    run = train(tiny_cfg("trainer.max_epochs=1", "output.tensorboard=false"))
    assert run.metrics_path.is_file() and not (run.path / "tensorboard").exists()


def test_a_gan_run_logs_fid_and_kid(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    cfg = load_config("dcgan-bitmoji-quick", [*GAN_TINY, f"output.runs_dir={tmp_path / 'runs'}", "trainer.max_epochs=2",
                                              "model.fid.n=24", "model.fid.final_n=0"])
    run = train(cfg)
    events = read_events(run.path)
    history = json.loads((run.eval / "fid.json").read_text())["history"]
    assert [e.value for e in events.Scalars("fid")] == pytest.approx([h["fid"] for h in history], rel=1e-5)
    assert [e.value for e in events.Scalars("kid")] == pytest.approx([h["kid_mean"] for h in history], rel=1e-5)
    assert {"train/g_loss_epoch", "train/d_loss_epoch"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == ["samples"]  # a DCGAN has no encoder: no reconstructions
