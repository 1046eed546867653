"""Training through the real runner on a tiny dataset: artefacts, resume, NaN, interruption."""

import json

import pytest
import torch

from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.train import runner
from genlab.train.loading import load_module, read_checkpoint


def _params(run: Run, which: str = "last") -> dict[str, torch.Tensor]:
    return read_checkpoint(run.checkpoint(which))["state_dict"]


def test_one_real_training_step_changes_the_weights(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=1", "trainer.max_epochs=1")
    torch.manual_seed(cfg.trainer.seed)
    from genlab.train.registry import build_module

    initial = {k: v.clone() for k, v in build_module(cfg).state_dict().items()}
    run = runner.train(cfg)
    trained = _params(run)
    changed = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert len(changed) == len(initial)  # every tensor of the VAE got a gradient step
    assert all(torch.isfinite(v).all() for v in trained.values())


def test_a_run_leaves_its_artefacts(tiny_cfg):
    run = runner.train(tiny_cfg())
    assert run.status()["status"] == "finished"
    for path in [run.config_path, run.metrics_path, run.last_checkpoint, run.best_checkpoint,
                 run.samples / "epoch_000.png", run.samples / "epoch_001.png",
                 run.reconstructions / "epoch_001.png", run.plots / "loss_curves.png"]:
        assert path.is_file(), path
    header = run.metrics_path.read_text().splitlines()[0].split(",")
    assert {"val/elbo", "val/kl", "val/log_likelihood", "train/loss_epoch"} <= set(header)
    from PIL import Image

    w, h = Image.open(run.samples / "epoch_001.png").size
    assert w == h == 10 * 64 + 11 * 2  # a 10x10 grid of 64 px images, 2 px padding
    assert run.config().model.latent_dim == 8
    # the best checkpoint holds the best validation ELBO of the run: saved at the epoch whose logged
    # val/elbo is highest, with that value as its score
    import csv

    elbo = {int(row["epoch"]): float(row["val/elbo"]) for row in csv.DictReader(open(run.metrics_path))
            if row.get("val/elbo")}
    best_epoch = max(elbo, key=elbo.get)
    best = read_checkpoint(run.best_checkpoint)
    assert best["genlab"]["model"] == "vae"
    assert best["epoch"] == best_epoch
    score = next(s["best_model_score"] for k, s in best["callbacks"].items() if "'monitor': 'val/elbo'" in k)
    assert float(score) == pytest.approx(elbo[best_epoch], rel=1e-6)
    # and its weights are those of that epoch: the last epoch's exactly when the last was the best
    last = _params(run)
    same = all(torch.equal(w, last[k]) for k, w in best["state_dict"].items())
    assert same == (best_epoch == max(elbo))


def test_resume_at_an_epoch_boundary_matches_an_uninterrupted_run(tiny_cfg):
    straight = runner.train(tiny_cfg("trainer.max_epochs=3", "output.run_name=straight"))
    first = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=resumed"))
    resumed = runner.train(tiny_cfg("trainer.max_epochs=3"), resume=first.path)
    assert resumed.path == first.path
    a, b = _params(straight), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed parameters differ from the uninterrupted run"
    # optimiser state came back too: Adam's step count covers all 3 epochs (3 batches each)
    state = read_checkpoint(resumed.last_checkpoint)
    assert state["global_step"] == 9
    assert resumed.config().trainer.max_epochs == 3
    # the metrics log kept the first epoch and appended the next two
    import csv

    epochs = {row["epoch"] for row in csv.DictReader(open(resumed.metrics_path)) if row.get("val/elbo")}
    assert epochs == {"0", "1", "2"}


class StopAfter:
    """A callback that presses Ctrl-C after `step` optimiser steps."""

    def __new__(cls, step: int):
        import lightning as L

        class _Stop(L.Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == step:
                    raise KeyboardInterrupt

        return _Stop()


def test_ctrl_c_mid_epoch_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tiny_cfg):
    straight = runner.train(tiny_cfg("trainer.max_epochs=2", "output.run_name=straight"))
    cfg = tiny_cfg("trainer.max_epochs=2", "output.run_name=ctrl-c")
    with pytest.raises(SystemExit):  # Lightning exits after its graceful shutdown
        runner.train(cfg, extra_callbacks=[StopAfter(4)])  # one batch into the second epoch
    run = Run.open(f"{cfg.output.runs_dir}/ctrl-c")
    assert run.status()["status"] == "interrupted"
    assert "--resume" in run.status()["message"]
    assert read_checkpoint(run.last_checkpoint)["global_step"] == 4
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    assert resumed.status()["status"] == "finished"
    assert read_checkpoint(resumed.last_checkpoint)["global_step"] == 6
    a, b = _params(straight), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "mid-epoch resume differs from the uninterrupted run"


def test_resume_refuses_a_different_model(tiny_cfg):
    run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    with pytest.raises(GenlabError, match="'model' section differs"):
        runner.train(tiny_cfg("model.latent_dim=4"), resume=run.path)


def test_resume_needs_a_checkpoint(tmp_path, tiny_cfg):
    with pytest.raises(GenlabError, match="not a genlab run directory"):
        runner.train(tiny_cfg(), resume=tmp_path)


def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_cfg, monkeypatch):
    run = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=nan"))
    good = _params(run)
    from genlab.models.vae import ConvVAE

    real_elbo = ConvVAE.elbo

    def poisoned(self, x, beta=1.0):
        out = real_elbo(self, x, beta)
        if self.training:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ConvVAE, "elbo", poisoned)
    with pytest.raises(GenlabError, match="loss became nan .*last good checkpoint was kept"):
        runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    after = _params(run)
    assert all(torch.equal(good[k], after[k]) for k in good)
    assert run.status()["status"] == "failed"
    assert "nan" in run.status()["message"]


def test_load_module_rejects_a_checkpoint_of_another_model(tiny_cfg):
    run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    ckpt = torch.load(run.best_checkpoint, weights_only=True)
    ckpt["genlab"]["model"] = "dcgan"
    torch.save(ckpt, run.best_checkpoint)
    with pytest.raises(GenlabError, match="holds a 'dcgan' model"):
        load_module(run.path)
    run.best_checkpoint.write_bytes(b"garbage")
    with pytest.raises(GenlabError, match="not a readable checkpoint"):
        load_module(run.path)
    json.loads(run.status_path.read_text())
