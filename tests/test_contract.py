"""One contract for every model kind, through the way users reach it (`genlab.load` of a run):
images in [0, 1] at every edge, the same names, the same seed giving the same samples, and
loading that needs neither the trainer nor Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genlab
from genlab.checkpoints import CHECKPOINT_FORMAT, checkpoint_stamp
from genlab.config import ExperimentConfig, build_config
from genlab.models.contract import from_unit, to_unit
from genlab.runs import Run

SIZE = 16
KINDS = {
    "vae": {"model": {"name": "vae", "latent_dim": 6, "channels": [4, 8], "likelihood": "bernoulli"},
            "data": {"channels": 1}},
    "dcgan": {"model": {"name": "dcgan", "latent_dim": 5, "g_width": 4, "d_width": 4}, "data": {"channels": 3}},
    "lsgan-ema": {"model": {"name": "lsgan", "latent_dim": 5, "g_width": 4, "d_width": 4, "ema": 0.9},
                  "data": {"channels": 3}},
    "bigan": {"model": {"name": "bigan", "latent_dim": 5, "g_width": 4, "d_width": 4}, "data": {"channels": 3}},
    "vqvae": {"model": {"name": "vqvae", "num_codes": 8, "code_dim": 4, "hidden": 8, "res_hidden": 4,
                        "res_blocks": 1, "init": "uniform"}, "data": {"channels": 3}},
    "betavae": {"model": {"name": "betavae", "latent_dim": 4, "beta": 4.0}, "data": {"channels": 1}},
    "btcvae": {"model": {"name": "btcvae", "latent_dim": 4}, "data": {"channels": 1}},
    "factorvae": {"model": {"name": "factorvae", "latent_dim": 4, "disc_hidden": 8, "disc_layers": 2},
                  "data": {"channels": 1}},
}


def kind_config(kind: str, root: Path) -> ExperimentConfig:
    spec = KINDS[kind]
    return build_config({"name": kind, "model": spec["model"],
                         "data": {"image_size": SIZE, **spec["data"]},
                         "output": {"runs_dir": str(root), "run_name": kind},
                         # NCHW weights like the loaded model's: channels_last kernels round differently
                         # (1 ulp), and this contract is exact equality
                         "trainer": {"channels_last": False}})


def perturbed(module: torch.nn.Module) -> None:
    """Move every floating tensor off its initial value, so a loader that dropped or swapped
    weights (e.g. the EMA generator for the trained one) shows up as a difference."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            t.add_(0.05 * torch.randn(t.shape, generator=g))


def write_run(kind: str, root: Path) -> tuple[Run, torch.nn.Module]:
    """A run directory with a checkpoint laid out as Lightning writes it (the training module's
    state dict, the genlab stamp, the config in the hyper-parameters); returns it and the module."""
    from genlab.train.registry import build_module

    cfg = kind_config(kind, root)
    torch.manual_seed(0)
    module = build_module(cfg).eval()
    perturbed(module)
    run = Run.create(cfg)
    ckpt = {"state_dict": module.state_dict(), "genlab": checkpoint_stamp(cfg.model.name),
            "hyper_parameters": {"config": cfg.to_dict()}}
    torch.save(ckpt, run.best_checkpoint)
    return run, module


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Run, torch.nn.Module]]:
    root = tmp_path_factory.mktemp("contract")
    return {kind: write_run(kind, root) for kind in KINDS}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_keeps_the_contract_through_genlab_load(runs, kind):
    run, module = runs[kind]
    model = genlab.load(run.path)
    assert model.name == run.config().model.name and not model.training

    samples = model.generate(4, seed=11)
    channels = KINDS[kind]["data"]["channels"]
    assert samples.shape == (4, channels, SIZE, SIZE) and samples.dtype == torch.float32
    assert 0 <= float(samples.min()) and float(samples.max()) <= 1
    assert torch.equal(samples, model.generate(4, seed=11)), "same seed, same samples"
    assert not torch.equal(samples, model.generate(4, seed=12))
    noise = model.noise(4, torch.Generator().manual_seed(11))
    torch.testing.assert_close(model.sample(noise), samples, rtol=0, atol=0)
    # the loaded model gives what the trained network inside the training module gives
    with torch.no_grad():
        torch.testing.assert_close(model.sample(noise), module.net.sample(noise), rtol=0, atol=0)

    x = torch.rand(3, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    has_encoder = kind in ("vae", "bigan", "vqvae", "betavae", "btcvae", "factorvae")
    assert model.has_encoder == has_encoder
    assert hasattr(model, "reconstruct") == has_encoder and hasattr(model, "encode") == has_encoder
    if has_encoder:
        recon = model.reconstruct(x)
        assert recon.shape == x.shape and 0 <= float(recon.min()) and float(recon.max()) <= 1
        torch.testing.assert_close(recon, module.net.reconstruct(x), rtol=0, atol=0)


def test_bigan_takes_and_gives_unit_range_images(runs):
    """The BiGAN's networks work in [-1, 1]; the model converts at its edges (issue: a [0, 1]
    image used to go straight into the encoder)."""
    run, module = runs["bigan"]
    model = genlab.load(run.path)
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = to_unit(module.net.generator(module.net.encoder(from_unit(x))))
        torch.testing.assert_close(model.encode(x), module.net.encoder(from_unit(x)))
    torch.testing.assert_close(model.reconstruct(x), expected)


def test_gan_samples_come_from_the_ema_generator(runs):
    run, module = runs["lsgan-ema"]
    model = genlab.load(run.path)
    z = model.noise(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.sample(z), to_unit(module.net.ema_generator(z)))
        assert not torch.allclose(model.sample(z), to_unit(module.net.generator(z)))


def test_a_format_1_checkpoint_with_a_separate_ema_still_loads(runs, tmp_path):
    """Format 1 kept the EMA generator as an AveragedModel beside the model (`g_ema.module.*`)."""
    run, module = runs["lsgan-ema"]
    state = {k: v for k, v in module.state_dict().items() if not k.startswith("net.ema_generator.")}
    state.update({"g_ema.module." + k: v for k, v in module.net.ema_generator.state_dict().items()})
    state["g_ema.n_averaged"] = state.pop("ema_updates")
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "genlab": {**checkpoint_stamp("lsgan"), "format": 1},
                "hyper_parameters": {"config": run.config().to_dict()}}, old)
    assert CHECKPOINT_FORMAT == 2
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(genlab.load(old).sample(z), genlab.load(run.path).sample(z), rtol=0, atol=0)


def test_genlab_load_needs_neither_the_trainer_nor_lightning(runs):
    """Every model kind loads and samples in a fresh process without importing Lightning or genlab.train."""
    paths = {kind: str(run.path) for kind, (run, _) in runs.items()}
    code = f"""
import json, sys
import genlab
out = {{}}
for kind, path in {paths!r}.items():
    model = genlab.load(path)
    out[kind] = list(model.generate(2, seed=0).shape)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')
               or m.startswith('genlab.train'))
print(json.dumps({{"shapes": out, "imported": heavy}}))
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    assert set(report["shapes"]) == set(KINDS) and all(s[0] == 2 for s in report["shapes"].values())
