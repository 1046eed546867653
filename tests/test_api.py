"""genlab.load / genlab.export: round trips give the same outputs, and wrong files give one clear error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from tests.conftest import tiny_images

import genlab
from genlab.errors import GenlabError
from genlab.runs import Run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    from tests.viz.conftest import train_tiny

    return train_tiny(tmp_path_factory.mktemp("api-runs"), "trainer.max_epochs=1", "output.run_name=api")


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return tiny_images("val").tensors[0][:4]


def outputs(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    mean, logvar = model.encode(x)
    return {"sample": model.generate(6, seed=3), "mean": mean, "logvar": logvar,
            "reconstruct": model.reconstruct(x), "decode": model.decode(mean)}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


# --- the loaded model ---------------------------------------------------------------------------
def test_import_genlab_stays_cheap():
    code = "import sys, genlab; assert 'torch' not in sys.modules, 'torch imported'; print(genlab.__version__)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    from genlab import api

    assert genlab.load is api.load and genlab.export is api.export


def test_loaded_model_matches_the_trained_network(run, x):
    from genlab.train.loading import load_module

    model = genlab.load(run.path)
    net = load_module(run.path).net  # the reference: the network inside the run's training module
    assert model.name == "vae" and model.config.model.latent_dim == 8 and model.device.type == "cpu"
    assert not model.training
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))  # what generate(6, seed=3) draws
    torch.testing.assert_close(model.generate(6, seed=3), net.decode(z))
    torch.testing.assert_close(model.sample(z), net.decode(z))
    torch.testing.assert_close(model.reconstruct(x), net.decode(net.encode(x)[0]))
    samples = model.generate(5)
    assert samples.shape == (5, 1, 64, 64) and 0 <= samples.min() and samples.max() <= 1
    assert model.latent_dim == 8  # attributes of the network are reachable


def test_log_likelihood_is_the_importance_sampling_estimate(run, x):
    from genlab.eval.importance import importance_sampling

    model = genlab.load(run.path)
    ll = model.log_px(x, samples=32, seed=1)
    ref = importance_sampling(model.net, x, n_samples=32, seed=1)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    torch.testing.assert_close(ll, torch.as_tensor(ref.log_px))
    # log mean exp of the log weights >= their mean, the ELBO (Jensen, on the same draws)
    assert (ll >= torch.as_tensor(ref.extras["elbo"]) - 1e-9).all()


def test_methods_exist_only_where_the_model_has_them():
    from genlab.api import TrainedModel
    from genlab.config import build_config
    from genlab.models.registry import build_model

    cfg = build_config({"model": {"name": "dcgan", "g_width": 8, "d_width": 8}, "data": {"channels": 3}})
    gan = TrainedModel(build_model(cfg), cfg, Path("gan"))
    assert gan.generate(2, seed=0).shape[0] == 2
    assert not hasattr(gan, "encode") and not hasattr(gan, "reconstruct")
    with pytest.raises(GenlabError, match="no likelihood"):
        gan.log_px(torch.rand(2, 3, 64, 64))


# --- export round trips -----------------------------------------------------------------------
@pytest.mark.parametrize("target", ["folder", "vae.safetensors"])
def test_export_then_load_gives_the_same_outputs(run, x, tmp_path, target):
    weights = genlab.export(run.path, tmp_path / target)
    config = weights.parent / "config.yaml" if target == "folder" else weights.with_suffix(".yaml")
    assert weights.is_file() and config.is_file()
    assert yaml.safe_load(config.read_text()) == run.config().to_dict()
    with safe_open(str(weights), framework="pt") as fh:
        assert fh.metadata()["model"] == "vae" and fh.metadata()["format"] == "2"
    assert_same(outputs(genlab.load(run.path), x), outputs(genlab.load(tmp_path / target), x))


def test_a_checkpoint_file_alone_loads_too(run, x):
    assert_same(outputs(genlab.load(run.path), x), outputs(genlab.load(run.best_checkpoint), x))
    assert_same(outputs(genlab.load(run.path, which="last"), x), outputs(genlab.load(run.last_checkpoint), x))


# --- wrong files --------------------------------------------------------------------------------
def _stamped_copy(run: Run, tmp_path: Path, **stamp) -> Path:
    copy = Path(shutil.copytree(run.path, tmp_path / "copy"))
    for name in ("best.ckpt", "last.ckpt"):
        path = copy / "checkpoints" / name
        ckpt = torch.load(path, weights_only=True)
        ckpt["genlab"].update(stamp)
        torch.save(ckpt, path)
    return copy


def test_checkpoint_of_another_version(run, tmp_path):
    with pytest.raises(GenlabError, match="checkpoint format 999 .* is not supported"):
        genlab.load(_stamped_copy(run, tmp_path, format=999, version="9.0"))


def test_checkpoint_of_another_model(run, tmp_path):
    with pytest.raises(GenlabError, match="holds a 'dcgan' model but .*config.yaml describes a 'vae'"):
        genlab.load(_stamped_copy(run, tmp_path, model="dcgan"))


def test_random_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(GenlabError, match="not a readable checkpoint"):
        genlab.load(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(GenlabError, match="not a genlab checkpoint"):
        genlab.load(foreign)
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(GenlabError, match="not a readable safetensors"):
        genlab.load(fake)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))  # safetensors from another tool: no stamp
    with pytest.raises(GenlabError, match="not a genlab checkpoint"):
        genlab.load(plain)
    with pytest.raises(GenlabError, match="no such run directory"):
        genlab.load(tmp_path / "missing")
    with pytest.raises(GenlabError, match="not a genlab run directory or export"):
        genlab.load(tmp_path)


def test_export_errors(run, tmp_path):
    weights = genlab.export(run.path, tmp_path / "exp")
    config = tmp_path / "exp" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())

    cfg["model"]["latent_dim"] = 16  # the config beside no longer describes these weights
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(GenlabError, match="weights do not fit the model in .*config.yaml"):
        genlab.load(tmp_path / "exp")

    config.unlink()
    with pytest.raises(GenlabError, match="config that goes with model.safetensors is missing"):
        genlab.load(tmp_path / "exp")

    genlab.export(run.path, tmp_path / "old")
    with safe_open(str(tmp_path / "old" / "model.safetensors"), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = fh.metadata()
    save_file(tensors, str(tmp_path / "old" / "model.safetensors"), metadata={**meta, "format": "999"})
    with pytest.raises(GenlabError, match="checkpoint format 999"):
        genlab.load(tmp_path / "old")
    save_file(tensors, str(tmp_path / "old" / "model.safetensors"), metadata={**meta, "model": "dcgan"})
    with pytest.raises(GenlabError, match="holds a 'dcgan' model"):
        genlab.load(tmp_path / "old")
    assert weights.is_file()
