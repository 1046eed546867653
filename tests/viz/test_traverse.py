"""Latent traversals, slerp and reconstruction errors, and `genlab traverse RUN` on a tiny BiGAN run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from genlab.cli import main
from genlab.config import load_config
from genlab.data import registry
from genlab.models.dcgan import DCGANGenerator
from genlab.train.runner import train
from genlab.viz.traverse import (
    coordinate_directions,
    principal_directions,
    reconstruction_error,
    slerp,
    traverse,
)


def test_coordinate_traversal_sets_one_coordinate():
    z0 = torch.randn(6)
    values = torch.linspace(-3, 3, 10)
    z = traverse(z0, coordinate_directions(6, [2, 5]), values).view(2, 10, 6)
    torch.testing.assert_close(z[0, :, 2], values)
    torch.testing.assert_close(z[1, :, 5], values)
    keep = [0, 1, 3, 4, 5]
    torch.testing.assert_close(z[0][:, keep], z0[keep].expand(10, -1))


def test_principal_directions_maximise_the_first_layer_response():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=12, channels=3, image_size=16, width=4)
    u = principal_directions(g, 3)
    torch.testing.assert_close(u @ u.t(), torch.eye(3), atol=1e-5, rtol=0)
    w = g.first_layer.weight.detach().flatten(1)  # (latent, rest): the first layer's map is z -> z @ w
    response = (u @ w).norm(dim=1)
    assert response[0] >= response[1] >= response[2]
    random = torch.nn.functional.normalize(torch.randn(500, 12), dim=1)
    assert float((random @ w).norm(dim=1).max()) <= float(response[0]) + 1e-5  # brute force: none beats PC 1


def test_slerp_endpoints_and_constant_angular_speed():
    torch.manual_seed(0)
    a, b = torch.randn(3, 10), torch.randn(3, 10)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)  # equal norms: stays on the sphere
    t = torch.linspace(0, 1, 5)
    path = slerp(a, b, t).view(3, 5, 10)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    torch.testing.assert_close(path.norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5))
    cos = torch.nn.functional.cosine_similarity(path, a[:, None], dim=2).clamp(-1, 1)
    omega = torch.acos(cos[:, -1:])
    torch.testing.assert_close(torch.acos(cos), omega * t, atol=1e-3, rtol=0)


class _Identity:
    def reconstruct(self, x):
        return x


def test_reconstruction_error_against_brute_force():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 4, 4)
    out = reconstruction_error(_Identity(), x, seed=3)
    assert out["reconstruction_mse"] == 0
    pairs = [((x[i] - x[j]) ** 2).mean() for i in range(20) for j in range(20) if i != j]
    # the random-pair baseline estimates the mean over all distinct pairs
    assert out["random_pair_mse"] == pytest.approx(float(torch.stack(pairs).mean()), rel=0.25)
    assert out["ratio_to_random_pair"] == 0


def test_traverse_command_on_a_bigan_run(tmp_path, monkeypatch, capsys):
    def data(cfg, split, seed):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = 32 if split == "train" else 12
        return TensorDataset(torch.rand(n, 3, 16, 16, generator=g), torch.zeros(n))

    monkeypatch.setitem(registry.BUILDERS, "bitmoji", data)
    cfg = load_config("bigan-bitmoji-quick", [
        "data.image_size=16", "model.g_width=4", "model.d_width=4", "model.latent_dim=12", "data.subset=null",
        "data.cache=false", "data.batch_size=16", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "trainer.accelerator=cpu", "model.fid.every_n_epochs=0", "model.fid.final_n=0",
        f"output.runs_dir={tmp_path / 'runs'}"])
    run = train(cfg)
    assert main(["traverse", str(run.path), "--rows", "4", "--steps", "10"]) == 0
    out = run.plots / "traverse"
    side = 16 + 2  # image + grid padding
    for name in ("coords", "pca", "slerp"):
        with Image.open(out / f"{name}.png") as img:
            assert img.size == (10 * side + 2, 4 * side + 2), name
    with Image.open(out / "recon.png") as img:
        assert img.size == (10 * side + 2, 2 * side + 2)  # 10 originals above their 10 reconstructions
    record = json.loads((run.eval / "reconstruction.json").read_text())
    assert record["n_images"] == 12
    assert math.isfinite(record["reconstruction_mse"]) and record["random_pair_mse"] > 0
    assert "recon:" in capsys.readouterr().out
    assert main(["traverse", str(run.path), "--mode", "coords", "--dims", "99"]) == 2  # clear one-line error
