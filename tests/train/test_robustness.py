"""Runs that survive a full disk, a damaged checkpoint, a tiny split, a second process, a changed
optimiser and a late SIGTERM (issue 13): nothing lost, one-line errors, status.json kept true."""

from __future__ import annotations

import csv
import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tests.conftest import tiny_images

from genlab.data import registry
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.train import checkpoint_io, runner
from genlab.train.loading import read_checkpoint


def _params(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- a full disk while a checkpoint is written -----------------------------------------------------
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_resume_works(tiny_cfg, monkeypatch):
    run = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=full"))
    before = run.last_checkpoint.read_bytes()

    def half_then_enospc(path, data):  # what a full disk does: some bytes land, then ENOSPC
        path.write_bytes(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io, "write_file", half_then_enospc)
    with pytest.raises(GenlabError, match=r"could not write .*\.ckpt \(No space left on device\); the previous "
                                          r"(last|best)\.ckpt was kept"):
        runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    assert run.last_checkpoint.read_bytes() == before
    assert not list(run.checkpoints.glob(".*.tmp"))  # no temp file left behind
    assert run.status()["status"] == "failed" and "No space left" in run.status()["message"]
    monkeypatch.undo()
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    assert resumed.status()["status"] == "finished"
    assert read_checkpoint(resumed.last_checkpoint)["epoch"] == 1


def _can_mount_tmpfs(where: Path) -> bool:
    where.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)], check=True)
    return ok


def test_a_really_full_disk_keeps_last_ckpt_whole(tiny_cfg, tmp_path):
    """The same on a real 1 MB tmpfs (needs root, as CI has): the checkpoint does not fit."""
    mnt = tmp_path / "full"
    if os.geteuid() != 0 or not _can_mount_tmpfs(mnt):
        pytest.skip("mounting a tmpfs needs root")
    run = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=full"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], check=True)
    try:
        small = Run(mnt / "full")
        small.checkpoints.mkdir(parents=True)
        good = run.last_checkpoint.read_bytes()
        small.last_checkpoint.write_bytes(good[: 1 << 19] if len(good) > 1 << 19 else good)
        target = small.checkpoints / "big.ckpt"
        target.write_bytes(b"old")
        with pytest.raises(GenlabError, match=r"big\.ckpt \(No space left on device\); the previous big\.ckpt was kept"):
            checkpoint_io.AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(1 << 20)}}, target)
        assert target.read_bytes() == b"old"
        assert not list(small.checkpoints.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_writer_killed_mid_checkpoint_leaves_the_previous_one_and_resume_matches(tiny_cfg, tmp_path):
    """kill -9 in the middle of writing the second epoch's checkpoint (half of it on disk)."""
    straight = runner.train(tiny_cfg("trainer.max_epochs=2", "output.run_name=straight"))
    runs = tmp_path / "runs"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from genlab.config import load_config
        from genlab.data import registry
        from genlab.train import checkpoint_io, runner
        from tests.conftest import TINY_MODEL, tiny_images
        registry.BUILDERS["dsprites"] = lambda cfg, split, seed: tiny_images(split)
        torch.set_num_threads({torch.get_num_threads()})  # as the straight run: float sums depend on threads
        real, calls = checkpoint_io.write_file, []
        def dying(path, data):
            calls.append(1)
            if len(calls) == 3:  # epoch 1's best.ckpt and last.ckpt are whole; the next write dies halfway
                path.write_bytes(bytes(data[: len(data) // 2]))
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, data)
        checkpoint_io.write_file = dying
        cfg = load_config("vae-dsprites-quick", [*TINY_MODEL, "data.batch_size=32", "trainer.max_epochs=2",
            "trainer.progress_bar=false", "trainer.accelerator=cpu", "output.runs_dir={runs}", "output.run_name=killed"])
        runner.train(cfg)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    run = Run(runs / "killed")
    assert read_checkpoint(run.last_checkpoint)["epoch"] == 0  # the previous checkpoint, whole
    assert list(run.checkpoints.glob(".*.tmp"))  # the half-written temp file, never at a final path
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    assert _same(_params(straight.last_checkpoint), _params(resumed.last_checkpoint))


# --- --resume checks the checkpoint first -------------------------------------------------------------
def test_resume_from_a_truncated_last_ckpt_falls_back_to_best_and_says_so(tiny_cfg, capsys):
    run = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=trunc"))
    data = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(data[: len(data) // 2])
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    err = capsys.readouterr().err
    assert "last.ckpt is damaged" in err and "resuming from" in err and "best.ckpt" in err
    assert resumed.status()["status"] == "finished"


def test_resume_with_every_checkpoint_damaged_is_one_line_naming_them(tiny_cfg, capsys):
    from genlab.cli import main

    run = runner.train(tiny_cfg("trainer.max_epochs=1", "output.run_name=trunc2"))
    for path in (run.last_checkpoint, run.best_checkpoint):
        path.write_bytes(path.read_bytes()[:1000])
    assert main(["train", "--resume", str(run.path), "trainer.max_epochs=2"]) == 2
    out = capsys.readouterr().out
    assert "last.ckpt is damaged" in out and "best.ckpt is damaged" in out and "Traceback" not in out


# --- a tiny validation split ----------------------------------------------------------------------------
def test_a_validation_split_smaller_than_a_grid_row_trains_and_writes_its_grids(tiny_cfg, monkeypatch):
    monkeypatch.setitem(registry.BUILDERS, "dsprites", lambda cfg, split, seed: tiny_images(split, n_val=3))
    run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    assert run.status()["status"] == "finished"
    assert (run.reconstructions / "epoch_000.png").is_file() and run.last_checkpoint.is_file()


# --- metrics.csv across kills and resumes ------------------------------------------------------------
def test_metrics_rows_are_written_once_whatever_the_kills_and_resumes(tiny_cfg):
    every_step = "trainer.log_every_n_steps=1"
    run = runner.train(tiny_cfg("trainer.max_epochs=1", every_step))
    epoch_1 = run.last_checkpoint.read_bytes()
    runner.train(tiny_cfg("trainer.max_epochs=2", every_step), resume=run.path)
    # killed after epoch 2's rows reached metrics.csv but before its last.ckpt did: resume redoes epoch 2
    run.last_checkpoint.write_bytes(epoch_1)
    runner.train(tiny_cfg("trainer.max_epochs=3", every_step), resume=run.path)
    runner.train(tiny_cfg("trainer.max_epochs=3", every_step), resume=run.path)  # nothing left to do: no rows
    with open(run.metrics_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows if r.get("train/elbo_step")] == list(range(9))  # 3 batches x 3 epochs
    assert [int(r["epoch"]) for r in rows if r.get("val/elbo")] == [0, 1, 2]
    assert [int(r["epoch"]) for r in rows if r.get("train/elbo_epoch")] == [0, 1, 2]


# --- optimiser settings on resume --------------------------------------------------------------------
def test_a_changed_lr_on_resume_is_applied_to_the_restored_optimiser(tiny_cfg):
    import lightning as L

    seen = []

    class LR(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2", "optimizer.lr=0.0123"), resume=run.path,
                           extra_callbacks=[LR()])
    assert seen and set(seen) == {0.0123}
    assert resumed.config().optimizer.lr == 0.0123
    assert read_checkpoint(resumed.last_checkpoint)["optimizer_states"][0]["param_groups"][0]["lr"] == 0.0123


# --- NaN with the Bernoulli likelihood ---------------------------------------------------------------
def test_nan_probabilities_give_a_nan_log_likelihood_not_an_error():
    from genlab.models.distributions import bernoulli_log_likelihood

    x = torch.zeros(2, 1, 4, 4)
    probs = torch.full((2, 1, 4, 4), 0.5)
    probs[0, 0, 0, 0] = float("nan")
    ll = bernoulli_log_likelihood(x, probs)
    assert torch.isnan(ll[0]) and torch.isclose(ll[1], torch.tensor(16 * torch.log(torch.tensor(0.5)).item()))


def test_a_diverging_bernoulli_vae_stops_with_the_nan_message(tiny_cfg):
    cfg = tiny_cfg("model.likelihood=bernoulli", "optimizer.lr=1e9", "trainer.max_epochs=3", "output.run_name=nan")
    with pytest.raises(GenlabError, match=r"became (nan|inf).*last good checkpoint was kept"):
        runner.train(cfg)
    assert Run(Path(cfg.output.runs_dir) / "nan").status()["status"] == "failed"


def _diverging(model: str, tmp_path: Path, monkeypatch) -> tuple:
    """A tiny config of `model` and, for the resumed run, an absurd learning rate."""
    from genlab.config import load_config

    if model == "vqvae":
        from tests.train.test_vqvae_training import TINY, fake_builder

        monkeypatch.setitem(registry.BUILDERS, "tinyimagenet", fake_builder)
        base = ["vqvae-tinyimagenet-quick", TINY]
    else:
        from tests.train.test_gan_training import TINY, fake_bitmoji, tiny_extractor

        from genlab.train import fid_callback

        monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))
        monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
        base = [f"{model}-bitmoji-quick", [*TINY, "model.fid.n=16", "model.fid.final_n=0", "model.fid.batch_size=16"]]
    name, overrides = base

    def cfg(*extra: str):
        return load_config(name, [*overrides, f"output.runs_dir={tmp_path / 'runs'}", "output.run_name=d", *extra])
    return cfg


@pytest.mark.parametrize("model", ["dcgan", "lsgan", "bigan", "vqvae"])
def test_a_real_divergence_of_a_gan_or_a_vqvae_stops_and_keeps_the_last_good_checkpoint(model, tmp_path, monkeypatch):
    cfg = _diverging(model, tmp_path, monkeypatch)
    run = runner.train(cfg("trainer.max_epochs=1"))
    good = run.last_checkpoint.read_bytes()
    with pytest.raises(GenlabError, match=r"became (nan|inf).*last good checkpoint was kept"):
        runner.train(cfg("trainer.max_epochs=3", "optimizer.lr=1e30"), resume=run.path)
    assert run.last_checkpoint.read_bytes() == good  # the diverged weights were never saved
    assert run.status()["status"] == "failed"
    assert all(torch.isfinite(v).all() for v in _params(run.last_checkpoint).values() if v.is_floating_point())


# --- two processes on one run ------------------------------------------------------------------------------
def test_a_second_process_on_a_run_is_refused_naming_the_holder(tiny_cfg):
    run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom genlab.runs import Run\n"
                               f"with Run.open({str(run.path)!r}).lock():\n print('held', flush=True)\n sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(GenlabError, match=rf"in use by another genlab process \(PID {holder.pid}\)"):
            runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    finally:
        holder.communicate(b"")
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == len(set(lines))  # nothing was appended twice
    # the holder is gone (its lock file, with its dead PID, is still there): the lock is taken over
    assert run.lock_path.read_text().strip() == str(holder.pid)
    resumed = runner.train(tiny_cfg("trainer.max_epochs=2"), resume=run.path)
    assert resumed.status()["status"] == "finished"


# --- SIGTERM during the end-of-training FID -------------------------------------------------------------
def test_sigterm_during_the_final_fid_stops_at_once_and_marks_the_run(tmp_path, monkeypatch):
    from tests.train.test_gan_training import TINY, fake_bitmoji, tiny_extractor

    from genlab.config import load_config
    from genlab.train import fid_callback

    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    state = {"final": False, "batches_after": 0}
    real_on_train_end = fid_callback.FIDCallback.on_train_end
    real_stop = fid_callback.FIDCallback.stop_if_asked

    def on_train_end(self, trainer, pl_module):
        state["final"] = True
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill <pid>` after "Trainer.fit stopped" does
        return real_on_train_end(self, trainer, pl_module)

    def stop_if_asked(self):
        if state["final"]:
            state["batches_after"] += 1
        return real_stop(self)

    monkeypatch.setattr(fid_callback.FIDCallback, "on_train_end", on_train_end)
    monkeypatch.setattr(fid_callback.FIDCallback, "stop_if_asked", stop_if_asked)
    cfg = load_config("dcgan-bitmoji-quick", [*TINY, f"output.runs_dir={tmp_path / 'runs'}", "output.run_name=g",
                                              "trainer.max_epochs=1", "model.fid.n=16", "model.fid.final_n=4000",
                                              "model.fid.batch_size=16"])
    with pytest.raises(GenlabError, match="stopped by SIGTERM"):
        runner.train(cfg)
    assert state["batches_after"] == 1  # the first batch of the final FID saw the signal
    run = Run(tmp_path / "runs" / "g")
    assert run.status()["status"] == "interrupted" and "--resume" in run.status()["message"]


def test_a_gan_resumed_after_a_late_sigterm_ends_with_its_final_fid(tmp_path, monkeypatch):
    """SIGTERM after the last epoch, before the final FID: the resumed run has no epoch left, so
    Lightning skips on_train_end; the final FID (and eval/fid.json's "final") must still come."""
    import json

    from tests.train.test_gan_training import TINY, fake_bitmoji, tiny_extractor

    from genlab.config import load_config
    from genlab.errors import Interrupted
    from genlab.train import fid_callback

    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: fake_bitmoji(split))
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    real_on_train_end = fid_callback.FIDCallback.on_train_end
    kills = []

    def killed_once(self, trainer, pl_module):
        if not kills:
            kills.append(1)
            os.kill(os.getpid(), signal.SIGTERM)  # `kill <pid>` just as training ends
        return real_on_train_end(self, trainer, pl_module)

    monkeypatch.setattr(fid_callback.FIDCallback, "on_train_end", killed_once)
    cfg = load_config("dcgan-bitmoji-quick", [*TINY, f"output.runs_dir={tmp_path / 'runs'}", "output.run_name=g",
                                              "trainer.max_epochs=2", "model.fid.n=16", "model.fid.final_n=24",
                                              "model.fid.batch_size=16"])
    with pytest.raises(Interrupted, match="stopped by SIGTERM"):
        runner.train(cfg)
    run = Run(tmp_path / "runs" / "g")
    record = json.loads((run.eval / "fid.json").read_text())
    assert "final" not in record and [h["epoch"] for h in record["history"]] == [0, 1]

    runner.train(cfg, resume=run.path)
    record = json.loads((run.eval / "fid.json").read_text())
    assert record["final"]["n_fake"] == 24 and record["final"]["checkpoint"] == "best.ckpt"
    assert [h["epoch"] for h in record["history"]] == [0, 1]  # the epochs before the kill are kept
    assert record["final"]["epoch"] == min(record["history"], key=lambda h: h["fid"])["epoch"]
    assert run.status()["status"] == "finished"


# --- a data error --------------------------------------------------------------------------------------------
def test_a_missing_dataset_leaves_no_run_folder(tiny_cfg, tmp_path):
    cfg = tiny_cfg("data.name=folder", f"data.root={tmp_path / 'nowhere'}", "data.channels=1",
                   "output.run_name=never")
    with pytest.raises(GenlabError):
        runner.train(cfg)
    assert not (Path(cfg.output.runs_dir) / "never").exists()


# --- file modes ------------------------------------------------------------------------------------------------
def test_every_run_file_is_group_readable(tiny_cfg):
    old = os.umask(0o022)
    try:
        run = runner.train(tiny_cfg("trainer.max_epochs=1"))
    finally:
        os.umask(old)
    files = [p for p in run.path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert any(p.suffix == ".png" for p in files) and run.config_path in files and run.report in files
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert all(m & 0o044 == 0o044 for m in modes.values()), modes


def test_a_gan_on_fewer_images_than_its_fid_n_trains_and_writes_every_artefact(tmp_path, monkeypatch):
    """bigan-bitmoji-quick with data.subset=200: FID n=500 and a validation split below one grid row."""
    from tests.train.test_gan_training import TINY, fake_bitmoji, tiny_extractor
    from torch.utils.data import TensorDataset

    from genlab.config import load_config
    from genlab.train import fid_callback

    def few(split):
        x, y = fake_bitmoji(split).tensors
        return TensorDataset(x[:3], y[:3]) if split == "val" else TensorDataset(x, y)

    monkeypatch.setitem(registry.BUILDERS, "bitmoji", lambda cfg, split, seed: few(split))
    monkeypatch.setattr(fid_callback, "build_extractor", lambda settings, real: tiny_extractor())
    cfg = load_config("bigan-bitmoji-quick", [*TINY, f"output.runs_dir={tmp_path / 'runs'}", "output.run_name=few",
                                              "trainer.max_epochs=1", "model.fid.n=500", "model.fid.final_n=64",
                                              "model.fid.batch_size=16"])
    with pytest.warns(UserWarning, match="only 48 images"):
        run = runner.train(cfg)
    assert run.status()["status"] == "finished"
    assert (run.reconstructions / "epoch_000.png").is_file() and (run.eval / "fid.json").is_file()
