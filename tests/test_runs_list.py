"""`genlab runs`: one row per run, from hand-written run folders (no training needed)."""

from __future__ import annotations

import pytest

from genlab.cli import main
from genlab.config import load_config
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.runs_list import list_runs, read_epoch_metrics

# Lightning's CSVLogger layout: step rows (with *_step columns) and one row per epoch-level value
METRICS = """epoch,img_per_s,step,train/loss_step,train/loss_epoch,val/elbo,val/loss
0,10.0,0,5.0,,,
0,11.0,1,4.0,,,
0,,1,,,-120.5,4.2
0,,1,,4.5,,
1,12.0,2,3.0,,,
1,,3,,,-99.25,3.1
1,,3,,3.5,,
2,,5,,,-101.0,3.3
2,,5,,3.2,,
"""


def make_run(root, name: str, status: str | None, metrics: str | None = METRICS, model: str = "vae") -> Run:
    overrides = [f"output.runs_dir={root}", f"output.run_name={name}", "trainer.max_epochs=5"]
    if model != "vae":
        overrides = [*overrides, "data.channels=3"]
    cfg = load_config("vae-dsprites-quick" if model == "vae" else f"{model}-bitmoji-quick", overrides)
    run = Run.create(cfg)
    if status:
        run.set_status(status, epoch=3 if metrics else 0)
    if metrics:
        run.metrics_path.write_text(metrics)
    return run


def test_epoch_metrics_leave_per_step_columns_out(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS)
    m = read_epoch_metrics(path)
    assert m.columns == ["val/elbo", "val/loss", "train/loss_epoch"]  # not *_step, not img_per_s
    assert m.values["val/elbo"] == {1: -120.5, 2: -99.25, 3: -101.0}
    assert m.best("val/elbo", "max") == (2, -99.25) and m.best("val/loss", "min") == (2, 3.1)
    assert m.last("train/loss_epoch") == 3.2


def test_runs_lists_every_status_and_the_headline(tmp_path, capsys):
    make_run(tmp_path, "done", "finished")
    make_run(tmp_path, "broken", "failed")
    make_run(tmp_path, "stopped", "interrupted")
    make_run(tmp_path, "live", "running", metrics=None)
    make_run(tmp_path, "gan", "finished", metrics="epoch,step,fid\n0,10,210.0\n1,20,150.5\n", model="dcgan")
    (tmp_path / "not-a-run").mkdir()
    rows = {s.name: s for s in list_runs(tmp_path)}
    assert set(rows) == {"done", "broken", "stopped", "live", "gan"}
    assert [rows[n].status for n in ("done", "broken", "stopped", "live")] == \
        ["finished", "failed", "interrupted", "running"]
    done = rows["done"]
    assert (done.model, done.dataset, done.epochs) == ("vae", "dsprites", "3/5")
    assert done.headline == "val/elbo" and done.best == (2, -99.25)  # the VAE keeps the highest ELBO
    assert rows["gan"].headline == "fid" and rows["gan"].best == (2, 150.5)  # a GAN the lowest FID
    assert rows["live"].best is None and rows["live"].headline_text == "-"

    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("done", "interrupted", "failed", "running", "-99.25", "150.5"):  # the table may fold
        assert text in out


def test_runs_of_a_missing_folder(tmp_path):
    with pytest.raises(GenlabError, match="no such folder"):
        list_runs(tmp_path / "nope")
    assert main(["runs", str(tmp_path)]) == 0  # an empty folder is not an error
