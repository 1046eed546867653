"""The GPU path, exercised on the CPU with tiny sizes: bf16 autocast for every model (checked against
the float32 values), channels_last weights, datasets kept on the device (the same batches as the host
loader path, and the same trained weights), torch.compile, and the device check's tiny mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from genlab.config import load_config
from genlab.data import registry
from genlab.data.cache import decode_on_device, float_table
from genlab.data.dsprites import DSprites, render, unpack_to_float
from genlab.data.transforms import to_float
from genlab.errors import GenlabError
from genlab.models.vae import ConvVAE
from genlab.models.vqvae import VectorQuantizer
from genlab.train import device_data, runner
from genlab.train.datamodule import GenlabDataModule
from genlab.train.loading import read_checkpoint
from genlab.train.registry import build_module

ROOT = Path(__file__).resolve().parents[2]


def _batches(dm: GenlabDataModule, split: str = "train", epoch: int = 0) -> list[list[torch.Tensor]]:
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    loader.sampler.set_epoch(epoch)
    return [list(b) for b in loader]


def _assert_same_batches(a, b, at_least: int = 2):
    assert len(a) == len(b) >= at_least
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == torch.float32 and xa.shape == xb.shape
        assert torch.equal(xa, xb)
        assert ya.dtype == yb.dtype and torch.equal(ya, yb)


# --- data on the device: the same batches ------------------------------------------------------------
def test_unpack_on_device_is_numpys_unpackbits():
    classes = np.random.default_rng(0).integers(0, [1, 3, 6, 40, 32, 32], size=(20, 6))
    images = render(classes)  # uint8 {0, 1}, the independent truth
    packed = torch.from_numpy(np.packbits(images, axis=-1))
    out = unpack_to_float(packed)
    assert out.shape == (20, 1, 64, 64) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], torch.from_numpy(images).float())


@pytest.mark.parametrize("epoch", [0, 3])
def test_dsprites_on_device_gives_the_loaders_batches(epoch):
    cfg = load_config("vae-dsprites-quick", ["data.subset=700", "data.batch_size=64"]).data
    host = GenlabDataModule(cfg, seed=5)
    dev = GenlabDataModule(cfg.model_copy(update={"on_device": True}), seed=5)
    host.setup(), dev.setup()
    assert isinstance(dev.train_set, DSprites)
    a, b = _batches(host, epoch=epoch), _batches(dev, epoch=epoch)
    _assert_same_batches(a, b)
    _assert_same_batches(_batches(host, "val"), _batches(dev, "val"), at_least=1)
    # and the order is the sampler's, not the storage's: epoch 0 and 3 differ
    if epoch:
        assert not torch.equal(_batches(host, epoch=0)[0][0], a[0][0])


def _image_folder(root: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("cats" if i % 3 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return root


def test_image_cache_on_device_gives_the_loaders_batches(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    over = ["data.name=folder", f"data.root={root}", "data.image_size=16", "data.channels=3", "data.cache=true",
            "data.batch_size=8", "data.val_fraction=0.3", "model.channels=[8,8]"]
    cfg = load_config("vae-dsprites-quick", over).data
    host, dev = GenlabDataModule(cfg, seed=1), GenlabDataModule(cfg.model_copy(update={"on_device": True}), seed=1)
    host.setup(), dev.setup()
    for epoch in (0, 1):
        _assert_same_batches(_batches(host, epoch=epoch), _batches(dev, epoch=epoch))
    # every pixel value 0..255 decodes like the loader's to_float (the table is exact)
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(decode_on_device(every, float_table()), to_float(every))
    assert torch.equal(to_float(every), every.float() / 255)


def test_image_dataset_without_cache_says_what_to_set(tmp_path):
    root = _image_folder(tmp_path / "imgs", 12)
    cfg = load_config("vae-dsprites-quick", ["data.name=folder", f"data.root={root}", "data.image_size=16",
                                             "data.channels=3", "data.on_device=true", "model.channels=[8,8]"]).data
    dm = GenlabDataModule(cfg)
    dm.setup()
    with pytest.raises(GenlabError, match="data.cache=true"):
        dm.train_dataloader()


def test_training_on_device_gives_the_loaders_weights(tiny_cfg):
    """The whole run (batches, order, RNG draws) is unchanged by data.on_device: bit-identical weights."""
    host = runner.train(tiny_cfg("output.run_name=host", "trainer.max_epochs=2"))
    dev = runner.train(tiny_cfg("output.run_name=dev", "trainer.max_epochs=2", "data.on_device=true"))
    a = read_checkpoint(host.last_checkpoint)["state_dict"]
    b = read_checkpoint(dev.last_checkpoint)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert dev.config().data.on_device


# --- bf16 autocast -------------------------------------------------------------------------------------
def test_vae_elbo_under_bf16_is_finite_and_close_to_float32():
    torch.manual_seed(0)
    for likelihood in ("gaussian", "bernoulli"):
        net = ConvVAE(1, 32, 8, channels=[8, 16], likelihood=likelihood)
        with torch.no_grad():  # a confident decoder: most probabilities above 0.998 (bf16 rounds them to 1)
            net.decoder[-2].bias.fill_(8.0)
        x = (torch.rand(6, 1, 32, 32) > 0.2).float()
        torch.manual_seed(1)
        ref = net.elbo(x)
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net.elbo(x)
        assert out["reconstruction"].dtype == out["elbo"].dtype == out["kl"].dtype == torch.float32
        assert torch.isfinite(out["loss"]), likelihood
        rel = ((out["elbo"] - ref["elbo"]).abs() / ref["elbo"].abs()).max()
        assert rel < 0.02, (likelihood, float(rel))


def test_quantizer_under_bf16_picks_the_float32_codes():
    torch.manual_seed(0)
    q = VectorQuantizer(32, 8, init="data", restart_threshold=0)
    ref_q = VectorQuantizer(32, 8, init="data", restart_threshold=0)
    z = torch.randn(4, 8, 6, 6)
    q.train(), ref_q.train()
    ref = ref_q(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z)
    assert torch.equal(out["indices"], ref["indices"])
    assert torch.equal(q.embedding, ref_q.embedding)  # the EMA update, in float32
    assert out["quantized"].dtype == torch.float32


GAN = ["data.image_size=16", "model.g_width=4", "model.d_width=4", "model.latent_dim=8", "data.subset=null",
       "data.cache=false", "data.batch_size=16", "model.fid.every_n_epochs=0", "model.fid.final_n=0"]
VQ = ["model.hidden=8", "model.res_hidden=4", "model.res_blocks=1", "model.code_dim=4", "model.num_codes=8",
      "model.init=data", "data.image_size=16", "data.batch_size=8", "data.subset=null"]
COMMON = ["trainer.max_epochs=1", "trainer.progress_bar=false", "trainer.accelerator=cpu",
          "output.grid_every_n_epochs=1000"]


def _colour_blobs(n: int, size: int = 16) -> TensorDataset:
    g = torch.Generator().manual_seed(n)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear")
    return TensorDataset(x, torch.zeros(n, dtype=torch.long))


CASES = {
    "vae-gaussian": ("vae-dsprites-quick", ["model.channels=[8,16,16,16,16]", "model.latent_dim=8",
                                            "model.likelihood=gaussian", "data.batch_size=32"]),
    "vae-bernoulli": ("vae-dsprites-quick", ["model.channels=[8,16,16,16,16]", "model.latent_dim=8",
                                             "model.likelihood=bernoulli", "data.batch_size=32"]),
    "vqvae": ("vqvae-tinyimagenet-quick", VQ),
    "dcgan": ("dcgan-bitmoji-quick", GAN),
    "lsgan": ("lsgan-bitmoji-quick", GAN),
    "bigan": ("bigan-bitmoji-quick", GAN),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_model_trains_in_bf16_with_channels_last_and_data_on_device(case, tmp_path, monkeypatch, tiny_data):
    config, over = CASES[case]
    for name in ("bitmoji", "tinyimagenet"):
        monkeypatch.setitem(registry.BUILDERS, name, lambda cfg, split, seed: _colour_blobs(48 if split == "train"
                                                                                             else 16))
    cfg = load_config(config, [*over, *COMMON, "trainer.max_steps=4", "trainer.precision=bf16-mixed",
                               "trainer.channels_last=true", "data.on_device=true",
                               f"output.runs_dir={tmp_path}"])
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_module(cfg).state_dict().items() if v.is_floating_point()}
    run = runner.train(cfg)
    state = read_checkpoint(run.last_checkpoint)["state_dict"]
    weights = [k for k in before if k.endswith("weight") and before[k].dim() == 4]
    assert weights and all(state[k].dtype == torch.float32 for k in before)  # master weights stay float32
    assert all(torch.isfinite(state[k]).all() for k in before)
    assert sum(not torch.equal(before[k], state[k]) for k in weights) >= len(weights) // 2
    assert run.status()["status"] == "finished"


def test_channels_last_weights_and_unchanged_checkpoint_keys(tiny_cfg):
    plain = build_module(tiny_cfg("trainer.channels_last=false"))
    cl = build_module(tiny_cfg("trainer.channels_last=true"))
    convs = [k for k, v in cl.state_dict().items() if v.dim() == 4 and v.shape[1] > 1 and v.shape[2] > 1]
    assert convs and all(cl.state_dict()[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    assert not plain.state_dict()[convs[0]].is_contiguous(memory_format=torch.channels_last)
    assert plain.state_dict().keys() == cl.state_dict().keys()


def test_code_priors_train_in_bf16():
    from genlab.train.prior_module import CodePriorModule

    cfg = load_config("vqvae-tinyimagenet-quick", ["model.num_codes=8", "model.priors.pixelcnn.hidden=8",
                                                   "model.priors.pixelcnn.layers=2", "model.priors.vae.hidden=8",
                                                   "model.priors.vae.latent_dim=4", "model.priors.vae.embed_dim=4"])
    from genlab.models.registry import build_neural_prior

    codes = torch.randint(0, 8, (32, 8, 8), generator=torch.Generator().manual_seed(0))
    for kind in ("pixelcnn", "vae"):
        torch.manual_seed(0)
        module = CodePriorModule(build_neural_prior(kind, cfg, (8, 8)), 1e-2)
        ref = float(module.net.loss(codes)["loss"].detach())
        trainer = L.Trainer(max_epochs=3, accelerator="cpu", precision="bf16-mixed", logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, DataLoader(TensorDataset(codes), batch_size=8))
        after = float(module.net.loss(codes)["loss"].detach())
        assert np.isfinite(after) and after < ref, (kind, ref, after)


# --- torch.compile ---------------------------------------------------------------------------------------
def test_compile_without_a_compiler_is_one_clear_error(tiny_cfg, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(device_data.shutil, "which", lambda name: None)
    with pytest.raises(GenlabError, match="C\\+\\+ compiler"):
        build_module(tiny_cfg("trainer.compile=true"))


@pytest.mark.skipif(device_data.compiler_problem("cpu") is not None,
                    reason=str(device_data.compiler_problem("cpu")))
def test_compiled_training_runs_and_keeps_checkpoint_keys(tiny_cfg):
    eager = build_module(tiny_cfg())
    run = runner.train(tiny_cfg("trainer.compile=true", "trainer.max_steps=2", "trainer.max_epochs=1"))
    state = read_checkpoint(run.last_checkpoint)["state_dict"]
    assert state.keys() == eager.state_dict().keys()  # no _orig_mod. prefixes
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert run.status()["status"] == "finished"


# --- the device check, tiny mode --------------------------------------------------------------------------
def test_gpu_check_runs_on_cpu_in_tiny_mode(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "GENLAB_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "gpu_check_cpu.json").read_text())
    md = (out / "gpu_check_cpu.md").read_text()
    assert data["device"]["type"] == "cpu" and data["device"]["name"]
    rows = data["throughput"]
    models = {r["model"] for r in rows}
    assert {"vae-64", "vae-128", "vqvae", "dcgan"} <= models
    measured = [r for r in rows if r.get("skipped") is None]
    assert measured and all(r["genlab_img_s"] > 0 and r["hand_img_s"] > 0 for r in measured)
    skipped = [r for r in rows if r.get("skipped")]
    assert all("GPU" in r["skipped"] or "compiler" in r["skipped"] or "tiny mode" in r["skipped"] for r in skipped)
    assert {r["variant"] for r in measured} == {"fp32", "bf16"}  # the CPU skips the GPU-only rows
    assert all(r["variant"] in ("bf16+channels_last", "bf16+channels_last+compile") for r in skipped
               if "GPU" in r["skipped"])
    assert data["fid"]["seconds"] > 0 and data["fid"]["n"] >= 2
    est = data["study_estimate"]
    assert est["total_hours"] > 0 and len(est["rows"]) >= 6
    assert "skipped" in md.lower() and data["device"]["name"] in md
