"""DDP with 2 CPU processes (gloo), through the real runner: both ranks train and end identical,
rank 0 alone writes the run directory."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, hashlib
    import lightning as L
    import torch
    from genlab.config import load_config
    from genlab.data import registry
    from genlab.train.runner import train
    sys.path.insert(0, {tests!r})
    from conftest import tiny_images, TINY_MODEL

    registry.BUILDERS["dsprites"] = lambda cfg, split, seed: tiny_images(split, n_train=128)

    class Report(L.Callback):
        def on_train_end(self, trainer, module):
            flat = torch.cat([p.detach().flatten() for p in module.parameters()])
            with open({out!r} + f"/rank{{trainer.global_rank}}.json", "w") as fh:
                json.dump({{"world": trainer.world_size, "steps": trainer.global_step,
                           "strategy": type(trainer.strategy).__name__,
                           "sum": float(flat.double().sum()), "norm": float(flat.double().norm())}}, fh)

    cfg = load_config("vae-dsprites-quick", TINY_MODEL + [
        "data.batch_size=32", "trainer.max_epochs=2", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.progress_bar=false", "output.runs_dir={runs}", "output.run_name=ddp"])
    train(cfg, extra_callbacks=[Report()])
""")


def test_two_cpu_processes_train_and_agree(tmp_path):
    tests = os.path.dirname(os.path.dirname(__file__))
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=tests, out=str(tmp_path), runs=str(tmp_path / "runs")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENLAB_RUN_DIR": ""}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["strategy"] == "DDPStrategy" for r in ranks)
    # 128 images sharded over 2 ranks at batch 32: 2 steps per epoch, 2 epochs
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4
    assert ranks[0]["sum"] == ranks[1]["sum"] and ranks[0]["norm"] == ranks[1]["norm"]
    run_dirs = list((tmp_path / "runs").iterdir())
    assert [d.name for d in run_dirs] == ["ddp"]  # one run directory, written by rank 0 only
    assert (run_dirs[0] / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run_dirs[0] / "status.json").read_text())["status"] == "finished"
