"""Shared fixtures: a tiny dataset and a tiny VAE config, so training tests take seconds."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from genlab.config import load_config
from genlab.data import registry

TINY_MODEL = ["model.channels=[8,16,16,16,16]", "model.latent_dim=8"]


def tiny_images(split: str, n_train: int = 96, n_val: int = 32) -> TensorDataset:
    """Sparse binary 64x64 images (dSprites-like), fixed per split."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = n_train if split == "train" else n_val
    x = (torch.rand(n, 1, 64, 64, generator=g) > 0.9).float()
    return TensorDataset(x, torch.arange(n))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path_factory.getbasetemp() / "genlab-cache"))
    # no test reaches the internet: the FID weights are never downloaded unless a test serves them itself
    monkeypatch.setenv("GENLAB_OFFLINE", "1")


@pytest.fixture
def tiny_data(monkeypatch):
    """Replace the dSprites builder by `tiny_images` for this test."""
    monkeypatch.setitem(registry.BUILDERS, "dsprites", lambda cfg, split, seed: tiny_images(split))


@pytest.fixture
def tiny_cfg(tmp_path, tiny_data):
    """A VAE config that trains in seconds on `tiny_images`."""

    def make(*overrides: str):
        return load_config("vae-dsprites-quick", [
            *TINY_MODEL, "data.batch_size=32", "trainer.max_epochs=2", "trainer.progress_bar=false",
            "trainer.accelerator=cpu", f"output.runs_dir={tmp_path / 'runs'}", *overrides])

    return make
