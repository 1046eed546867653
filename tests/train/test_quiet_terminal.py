"""What `genlab train` prints (issue 16), run as a user runs it: a subprocess, stdout and stderr captured.

One header line, one line per epoch with the model's key metric, one final "finished" line; none of
Lightning's banners or harmless warnings unless --verbose; DDP's second rank prints nothing.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest
from tests.conftest import TINY_MODEL

from genlab.train.console import EPOCH_COLUMNS, EpochMetrics, TrainingBar, epoch_line
from genlab.train.speed import resolve_precision

# the built-in dSprites (rendered), a tiny model: seconds per run
QUICK = [*TINY_MODEL, "data.subset=256", "data.batch_size=64", "trainer.accelerator=cpu"]

BANNERS = ("GPU available", "TPU available", "was configured so", "`Trainer.fit` stopped", "exists and is not empty",
           "Initializing distributed", "distributed_backend", "All distributed processes", "Warning", "warn(")


def genlab(*args: str, cwd) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENLAB_RUN_DIR": "", "GENLAB_VERBOSE": "", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "genlab", *args], cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"epoch +\d+/\d+ ", line)]


def val_elbo_per_epoch(run) -> list[float]:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(r["val/elbo"]) for r in csv.DictReader(fh) if r.get("val/elbo")]


def test_a_run_prints_a_header_its_epochs_and_one_finished_line_and_nothing_of_lightning(tmp_path):
    runs = tmp_path / "runs"
    out = genlab("train", "vae-dsprites-quick", *QUICK, "trainer.max_epochs=2", f"output.runs_dir={runs}",
                 "output.run_name=quiet", cwd=tmp_path)
    for banner in BANNERS:
        assert banner not in out, f"{banner!r} printed:\n{out}"
    run = runs / "quiet"
    header = lines_with(out, "vae on dsprites")
    assert len(header) == 1 and str(run) in header[0] and "243 train + 13 val images" in header[0]
    expected = resolve_precision("auto", "auto")  # the config's precision: auto, whatever it is on this CPU
    assert "cpu" in header[0] and f"precision {expected}" in header[0]
    finished = lines_with(out, "finished")
    assert len(finished) == 1 and str(run) in finished[0] and "tensorboard --logdir" in finished[0]
    # one line per epoch, whose val ELBO is the one metrics.csv recorded for that epoch
    lines = epoch_lines(out)
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    printed = [float(re.search(r"val ELBO (-?[\d.]+) nats", line).group(1)) for line in lines]
    assert printed == pytest.approx(val_elbo_per_epoch(run), abs=0.006)
    assert len(out.strip().splitlines()) == 4  # header, 2 epochs, finished: nothing else

    # a resume is just as quiet (Lightning warns that the checkpoint folder is not empty) and says so
    out = genlab("train", "--resume", str(run), "trainer.max_epochs=3", cwd=tmp_path)
    for banner in BANNERS:
        assert banner not in out, f"{banner!r} printed on resume:\n{out}"
    assert "resumed at epoch 3" in lines_with(out, "vae on dsprites")[0]
    assert [line.split()[1] for line in epoch_lines(out)] == ["3/3"]
    assert len(lines_with(out, "finished")) == 1


def test_verbose_brings_the_banners_back(tmp_path):
    out = genlab("train", "vae-dsprites-quick", *QUICK, "trainer.max_epochs=1", f"output.runs_dir={tmp_path}",
                 "--verbose", cwd=tmp_path)
    assert "GPU available" in out and "was configured so" in out and "`Trainer.fit` stopped" in out
    assert len(lines_with(out, "finished")) == 1  # "run finished" once; Lightning's says "stopped"


def test_ddp_on_two_cpu_processes_prints_once(tmp_path):
    out = genlab("train", "vae-dsprites-quick", *QUICK, "trainer.max_epochs=2", f"output.runs_dir={tmp_path}",
                 "--devices", "2", cwd=tmp_path)
    assert len(lines_with(out, "finished")) == 1, out
    header = lines_with(out, "vae on dsprites")
    assert len(header) == 1 and "2 x cpu" in header[0]
    assert [line.split()[1] for line in epoch_lines(out)] == ["1/2", "2/2"]
    for banner in BANNERS:
        assert banner not in out, f"{banner!r} printed:\n{out}"


# --- the pieces, without a run ---------------------------------------------------------------------
def test_the_epoch_line_shows_each_model_kinds_metrics_and_only_this_epochs():
    vae = {"train/loss_epoch": 2805.03, "val/elbo": -2772.354, "val/kl": 3.2}
    line = epoch_line(0, 30, vae, 12.5, 640.0, best=True)
    assert line.startswith("epoch  1/30  ") and "val ELBO -2772.35 nats" in line and "640 img/s" in line
    assert "best" in line and "12.5 s" in line
    assert "loss 27,270 " in epoch_line(0, 2, {"train/loss_epoch": 27270.4}, 1, None)  # not 2.727e+04
    gan = epoch_line(4, 10, {"train/g_loss_epoch": 2.31, "train/d_loss_epoch": 0.45, "fid": 131.74, "kid": 0.1213},
                     75, None)
    assert "G loss 2.310" in gan and "D loss 0.450" in gan and "FID 131.7" in gan and "KID 0.1213" in gan
    assert "1 min 15 s" in gan and "best" not in gan
    vq = epoch_line(1, 2, {"val/psnr": 22.153, "val/usage": 0.873, "val/epoch_perplexity": 210.31}, 3, 100)
    assert "val PSNR 22.15 dB" in vq and "codes used 87%" in vq and "perplexity 210.3" in vq
    # the labels name every metric the line can show, once each
    assert len({key for key, _, _ in EPOCH_COLUMNS}) == len(EPOCH_COLUMNS)

    metrics = EpochMetrics()
    metrics.log_metrics({"fid": 140.0, "epoch": 0}, step=10)
    assert metrics.take() == {"fid": 140.0, "epoch": 0.0}
    metrics.log_metrics({"train/g_loss_epoch": 1.0}, step=20)
    assert "fid" not in metrics.take()  # an epoch without FID does not repeat the last one


def test_the_bar_shows_the_step_losses_and_img_per_s_only():
    class Trainer:  # what RichProgressBar.get_metrics reads
        progress_bar_metrics = {"train/loss_step": 2778.3851, "train/loss_epoch": 2805.0, "val/elbo": -2772.3,
                                "img_per_s": 644.77, "train/g_loss_step": 0.69312}
        loggers: list = []
        logger = None

    shown = TrainingBar().get_metrics(Trainer(), None)
    assert shown == {"loss": "2778", "img/s": "645", "g loss": "0.6931"}
