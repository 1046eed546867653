"""CLI smoke runs on a budget of seconds, in-process through `genlab.cli.main`."""

import json
import subprocess
import sys

from tests.conftest import TINY_MODEL

from genlab.cli import main

QUICK = [*TINY_MODEL, "data.subset=400", "data.batch_size=64", "trainer.max_epochs=1",
         "trainer.progress_bar=false", "trainer.accelerator=cpu"]


def test_train_sample_evaluate_on_the_built_in_dsprites(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "vae-dsprites-quick", *QUICK, f"output.runs_dir={runs}", "output.run_name=smoke"]) == 0
    run = runs / "smoke"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert main(["evaluate", str(run), "--loglik", "--n-images", "3", "--samples", "50"]) == 0
    table = json.loads((run / "eval" / "loglik.json").read_text())
    assert len(table["images"]) == 3
    assert "is" in table["estimators"] and table["likelihood"] == "bernoulli"
    out = capsys.readouterr().out
    assert "run finished" in out and "loglik.json" in out


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "vae-dsprites-quick", "model.latnt_dim=3"]) == 2
    assert "unknown key 'model.latnt_dim'" in capsys.readouterr().out
    assert main(["sample", str(tmp_path)]) == 2
    assert "not a genlab run directory" in capsys.readouterr().out
    assert main(["train", "no-such-config"]) == 2
    assert "config file not found" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "genlab", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("train", "sample", "evaluate", "data", "demo"):
        assert command in proc.stdout
