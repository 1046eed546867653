"""The disentangling VAEs through the real runner on tiny data: a training step per model, the true
ELBO in the logs, save -> load as the plain model, FactorVAE's two optimisers, and `genlab evaluate`."""

import csv

import lightning as L
import pytest
import torch

import genlab
from genlab.config import load_config
from genlab.errors import GenlabError
from genlab.evaluate import evaluate_loglik
from genlab.runs import Run
from genlab.train import runner
from genlab.train.loading import read_checkpoint
from genlab.train.registry import build_module

SMALL_DISCRIMINATOR = ["model.disc_hidden=32", "model.disc_layers=2"]


@pytest.fixture
def disentangle_cfg(tmp_path, tiny_data):
    def make(name: str, *overrides: str):
        extra = SMALL_DISCRIMINATOR if name == "factorvae" else []
        return load_config(f"dsprites-{name}", [
            "data.subset=null", "data.batch_size=32", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "trainer.progress_bar=false", "trainer.accelerator=cpu",
            f"output.runs_dir={tmp_path / 'runs'}", *extra, *overrides])

    return make


def _metrics(run: Run) -> list[dict[str, str]]:
    with open(run.metrics_path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", ["vae", "betavae", "btcvae", "factorvae"])
def test_a_training_step_changes_every_weight_and_the_model_loads_back(name, disentangle_cfg):
    cfg = disentangle_cfg(name)
    torch.manual_seed(cfg.trainer.seed)
    initial = {k: v.clone() for k, v in build_module(cfg).state_dict().items()}
    run = runner.train(cfg)
    trained = read_checkpoint(run.last_checkpoint)["state_dict"]
    unchanged = [k for k in initial if torch.equal(initial[k], trained[k])]
    assert not unchanged  # the discriminator of FactorVAE trained too
    header = set(_metrics(run)[0])
    assert {"val/elbo", "val/kl", "val/log_likelihood", "val/loss"} <= header
    if name == "btcvae":
        assert {"train/mi_epoch", "train/tc_epoch", "train/dimkl_epoch"} <= header
    if name == "factorvae":
        assert {"train/d_loss_epoch", "train/tc_epoch"} <= header

    model = genlab.load(run.path, which="last")
    assert type(model.net).__name__ == {"vae": "BetaVAE", "betavae": "BetaVAE", "btcvae": "BetaTCVAE",
                                        "factorvae": "FactorVAE"}[name]
    plain = Run.open(run.path).load_model("last")
    loaded = plain.state_dict()
    assert all(torch.equal(loaded[k], trained[f"net.{k}"]) for k in loaded)
    x = (torch.rand(2, 1, 64, 64) > 0.9).float()
    assert torch.equal(model.encode(x)[0], plain.encode(x)[0])


def test_the_logged_elbo_is_the_true_elbo_not_the_weighted_loss(disentangle_cfg):
    run = runner.train(disentangle_cfg("betavae", "model.beta=50"))
    last = [r for r in _metrics(run) if r.get("val/elbo")][-1]
    elbo, kl, rec, loss = (float(last[f"val/{k}"]) for k in ("elbo", "kl", "log_likelihood", "loss"))
    assert elbo == pytest.approx(rec - kl, rel=1e-4)
    assert loss == pytest.approx(-(rec - 50 * kl), rel=1e-4)


def test_factorvae_keeps_the_discriminators_own_optimiser_settings(disentangle_cfg):
    module = build_module(disentangle_cfg("factorvae"))
    vae, disc = module.configure_optimizers()
    assert vae.param_groups[0]["lr"] == 5e-4 and vae.param_groups[0]["betas"] == (0.9, 0.999)
    assert disc.param_groups[0]["lr"] == 1e-4 and disc.param_groups[0]["betas"] == (0.5, 0.9)
    disc_params = {id(p) for p in module.net.discriminator.parameters()}
    assert not disc_params & {id(p) for p in vae.param_groups[0]["params"]}


class RecordN(L.Callback):
    seen: list = []

    def on_train_start(self, trainer, pl_module) -> None:
        RecordN.seen.append(pl_module.dataset_size)


def test_btcvae_takes_n_from_the_training_split_and_genlab_evaluate_scores_it(disentangle_cfg):
    run = runner.train(disentangle_cfg("btcvae"), extra_callbacks=[RecordN()])
    assert RecordN.seen == [96]  # tiny_images: 96 training images
    module = build_module(disentangle_cfg("btcvae", "model.dataset_size=8"))
    with pytest.raises(GenlabError, match="smaller than data.batch_size"):
        module.setup("fit")

    out = evaluate_loglik(run.path, n_images=2, samples=16, estimators=["is"], which="last", proposal="encoder")
    import json

    table = json.loads(out.read_text())  # the estimators ran unchanged on the beta-TCVAE
    assert table["likelihood"] == "bernoulli"
    assert len(table["images"]) == 2 and all(r["is"]["log_px"] < 0 for r in table["images"])
