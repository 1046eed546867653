"""Soak test of interruption and resume (issue 13): a quick training is killed N times at a random
moment with a random signal (SIGKILL or SIGTERM), resumed until it finishes, and its final weights
are compared bit for bit with an uninterrupted run. Every file left in the run folder after each
kill is checked (config.yaml, status.json, metrics.csv, checkpoints, PNGs, JSON).

    .venv/bin/python benchmarks/soak_resume.py --trials 20 --out /tmp/soak

Runs the real CLI (`python -m genlab train`) in subprocesses on the built-in dSprites renderer,
one thread each (OMP_NUM_THREADS=1). Prints one line per trial and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ARGS = ["vae-dsprites-quick", "model.channels=[8,16,16,16,16]", "model.latent_dim=8", "data.subset=640",
        "data.batch_size=64", "trainer.max_epochs=3", "trainer.progress_bar=false", "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def genlab(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genlab", *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def damaged_files(run: Path) -> list[str]:
    """Files at their final paths that do not read back (temp files `.name.*.tmp` are not final)."""
    from PIL import Image

    bad = []
    for path in run.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".ckpt":
                assert "state_dict" in torch.load(path, map_location="cpu", weights_only=True)
            elif path.suffix == ".png":
                Image.open(path).verify()
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".yaml":
                yaml.safe_load(path.read_text())
            elif path.suffix == ".csv":
                path.read_text()
        except Exception as exc:  # noqa: BLE001 - any failure to read back is a damaged file
            bad.append(f"{path.relative_to(run)} ({type(exc).__name__})")
    return bad


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--out", default="/tmp/genlab-soak")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    rng = random.Random(a.seed)
    t0 = time.perf_counter()
    ref = genlab("train", *ARGS, f"output.runs_dir={out}", "output.run_name=reference")
    assert ref.wait() == 0, ref.stderr.read()
    duration = time.perf_counter() - t0
    reference = weights(out / "reference")
    print(f"uninterrupted run: {duration:.1f} s", flush=True)

    identical, damaged_total, restarts = 0, [], 0
    for trial in range(a.trials):
        name = f"soak-{trial:02d}"
        run = out / name
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        delay = rng.uniform(0.3, 1.0) * duration  # the first ~30% is interpreter start-up and data
        proc = genlab("train", *ARGS, f"output.runs_dir={out}", f"output.run_name={name}")
        time.sleep(delay)
        proc.send_signal(sig)
        code = proc.wait()
        bad = damaged_files(run) if run.exists() else []
        damaged_total += [f"{name}/{b}" for b in bad]
        resumes = 0
        while True:  # resume until finished (a kill before the first checkpoint: start again)
            if (run / "checkpoints" / "last.ckpt").is_file() or (run / "checkpoints" / "best.ckpt").is_file():
                again = genlab("train", "--resume", str(run))
            else:
                shutil.rmtree(run, ignore_errors=True)
                restarts += 1
                again = genlab("train", *ARGS, f"output.runs_dir={out}", f"output.run_name={name}")
            rc = again.wait()
            resumes += 1
            if rc == 0:
                break
            print(f"  {name}: retry exited {rc}: {again.stderr.read().strip().splitlines()[-1:]}", flush=True)
            if resumes > 3:
                break
        same = all(torch.equal(reference[k], v) for k, v in weights(run).items()) if rc == 0 else False
        identical += same
        status = json.loads((run / "status.json").read_text())["status"] if rc == 0 else "?"
        print(f"{name}: {signal.Signals(sig).name} after {delay:5.1f} s (exit {code}), {resumes} resume(s), "
              f"status {status}, weights {'identical' if same else 'DIFFERENT'}, damaged files: {bad or 'none'}",
              flush=True)
    print(f"\n{identical} of {a.trials} runs ended with weights identical to the uninterrupted run; "
          f"{len(damaged_total)} damaged file(s){': ' + ', '.join(damaged_total) if damaged_total else ''}; "
          f"{restarts} kill(s) came before the first checkpoint (run started again); "
          f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
