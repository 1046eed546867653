"""User-caused failures through the CLI are one line and exit status 2 (issue 13): a read-only run
folder, a binary config file, a data error, a Ctrl-C after training."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from tests.conftest import TINY_MODEL

from genlab.cli import main

QUICK = [*TINY_MODEL, "data.subset=300", "data.batch_size=64", "trainer.max_epochs=1",
         "trainer.progress_bar=false", "trainer.accelerator=cpu"]


def _one_line_error(out: str, *needles: str, prefix: str = "error:") -> None:
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("cli-robust") / "runs"
    assert main(["train", "vae-dsprites-quick", *QUICK, f"output.runs_dir={runs}", "output.run_name=r"]) == 0
    return runs / "r"


@pytest.fixture
def read_only_copy(trained_run, tmp_path):
    """The run behind a read-only bind mount, as on a shared results volume (needs root, as CI has)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(trained_run), str(mnt)]).returncode:
        pytest.skip("a read-only bind mount needs root")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("command", [
    ["sample"], ["report"], ["traverse", "--mode", "coords", "--rows", "2", "--steps", "3"],
    ["evaluate", "--loglik", "--n-images", "2", "--samples", "10"], ["train", "--resume"]])
def test_a_read_only_run_folder_is_a_one_line_error(read_only_copy, command, capsys):
    argv = [*command, str(read_only_copy)] if command != ["train", "--resume"] else \
        ["train", "--resume", str(read_only_copy), "trainer.max_epochs=2"]
    assert main(argv) == 2
    _one_line_error(capsys.readouterr().out, "Read-only file system")


def test_an_os_error_a_user_can_fix_is_one_line_anywhere(trained_run, monkeypatch, capsys):
    # an OSError raised outside genlab.io's writers (here: anywhere in `genlab sample`) still gives one line
    import genlab.sampling as sampling

    def refuse(*a, **kw):
        raise OSError(errno.EACCES, "Permission denied", str(trained_run / "samples" / "x.png"))

    monkeypatch.setattr(sampling, "sample_grid", refuse)
    assert main(["sample", str(trained_run)]) == 2
    _one_line_error(capsys.readouterr().out, "x.png", "Permission denied")


def test_a_binary_config_file_is_a_one_line_error(tmp_path, capsys):
    some = tmp_path / "some.bin"
    some.write_bytes(bytes(range(256)) * 4)
    assert main(["train", str(some)]) == 2
    _one_line_error(capsys.readouterr().out, "some.bin", "not a text file")


def test_a_missing_dataset_is_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "vae-dsprites-quick", *QUICK, "data.name=folder", "data.channels=1",
                 f"data.root={tmp_path / 'nowhere'}", f"output.runs_dir={runs}"]) == 2
    _one_line_error(capsys.readouterr().out, "nowhere")
    assert not runs.exists() or not list(runs.iterdir())


def test_ctrl_c_after_training_is_one_line_and_marks_the_run(tmp_path, monkeypatch, capsys):
    from genlab.runs import Run
    from genlab.viz import curves

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(curves, "plot_curves", interrupted)  # Ctrl-C while the end-of-run plots are drawn
    runs = tmp_path / "runs"
    # 130, as for any interruption (an Interrupted error, not a mistake of the user's: that is 2)
    assert main(["train", "vae-dsprites-quick", *QUICK, f"output.runs_dir={runs}", "output.run_name=late"]) == 130
    _one_line_error(capsys.readouterr().out, "interrupted after training", "genlab report", prefix="interrupted:")
    run = Run.open(runs / "late")
    assert run.status()["status"] == "interrupted" and run.last_checkpoint.is_file()


def test_sigterm_outside_training_stops_a_command_like_ctrl_c(trained_run, monkeypatch, capsys):
    import signal
    import time

    import genlab.viz.report as report

    def slow_report(*a, **kw):  # `kill <pid>` while a long step runs
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(report, "write_report", slow_report)
    assert main(["report", str(trained_run)]) == 130
    assert "interrupted" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the CLI's handler is put back
