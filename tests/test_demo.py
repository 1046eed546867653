"""`genlab demo` end to end on a tiny model: both priors' grids, the sprite figure naming its prior."""

from __future__ import annotations

import io
import json

import numpy as np
from rich.console import Console
from tests.conftest import TINY_MODEL

from genlab.data import dsprites
from genlab.demo import GRID_NAMES, run_demo
from genlab.runs import Run


def test_demo_samples_from_the_configured_prior_and_reports_both(tiny_data, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    classes = np.stack([rng.integers(0, s, 40) for s in dsprites.LATENT_SIZES], axis=1)
    monkeypatch.setattr(dsprites, "load_all", lambda *a, **k: np.packbits(dsprites.render(classes), axis=-1))
    out = io.StringIO()
    run_demo("vae-dsprites-quick", [*TINY_MODEL, "data.batch_size=32", "trainer.progress_bar=false",
                                    "trainer.accelerator=cpu", "model.prior_components=2", "model.prior_images=50",
                                    "eval.n_images=2", "eval.samples=20", f"output.runs_dir={tmp_path}"],
             console=Console(file=out, width=200))
    (path,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = Run.open(path)
    for name in GRID_NAMES.values():
        assert (run.samples / name).is_file()
    q = json.loads((run.eval / "sprite_quality.json").read_text())
    assert q["prior"] == "aggregate-gmm" and q["n"] == 100 and "standard" in q
    assert (run.prior_dir("aggregate-gmm") / "prior.npz").is_file()
    text = out.getvalue()
    assert "aggregate-posterior GMM prior, n=100" in text and "N(0, I) prior, n=100" in text
    assert f"{q['mean_iou']:.3f}" in text and f"{q['standard']['mean_iou']:.3f}" in text
    # the shapes matched and the crisp share, in the json and on the terminal, for both priors
    for figures in (q, q["standard"]):
        assert set(figures["shapes"]) == {"square", "ellipse", "heart"} and 0 <= figures["crisp_fraction"] <= 1
        assert f"{100 * figures['crisp_fraction']:.0f}%" in text
    assert text.count("crisp (IoU >= 0.9)") == 2 and "best matches:" in text
