"""One tiny VAE trained for real (2 epochs on `tiny_images`), shared by the report tests."""

from __future__ import annotations

import pytest
from tests.conftest import TINY_MODEL, tiny_images

from genlab.config import load_config
from genlab.data import registry
from genlab.train.runner import train


def train_tiny(runs_dir, *overrides: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.BUILDERS, "dsprites", lambda cfg, split, seed: tiny_images(split))
        cfg = load_config("vae-dsprites-quick", [
            *TINY_MODEL, "data.batch_size=32", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
            "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1",
            f"output.runs_dir={runs_dir}", *overrides])
        return train(cfg)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run: checkpoints, samples/ and reconstructions/ per epoch, plots/, report.html."""
    return train_tiny(tmp_path_factory.mktemp("report-runs"), "output.run_name=tiny")
