"""bf16 at equal steps (issue 20): does `trainer.precision: auto` reach float32's quality at the same step?

Trains one config twice per seed, in float32 NCHW (`trainer.precision=32-true trainer.channels_last=false`)
and with auto (on a CPU with native bf16: bf16 autocast + channels_last weights), the same seed, data
and steps, then reads one quality figure per run:
  VAE: the last val ELBO (nats); VQ-VAE: the last val PSNR (dB, images never trained on);
  GANs: the last FD of metrics.csv (the config's FID extractor and N) and the pixel diversity and
  coverage of 500 samples of last.ckpt against the data.holdout images (genlab.eval.pixel_scores).
"Within noise" means: |auto - float32| at each seed no larger than the float32 seed-to-seed spread.
These are quality figures, not timings; the table also lists each run's training img/s.

    .venv/bin/python benchmarks/precision_equal_steps.py vqvae-tinyimagenet data.root=../shared/data/tinyimagenet \\
        data.subset=4000 trainer.max_epochs=3 --seeds 0 1 --out /tmp/eq/vq
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {"float32": ["trainer.precision=32-true", "trainer.channels_last=false"],
            "auto": ["trainer.precision=auto", "trainer.channels_last=auto"]}


def last_value(metrics: Path, column: str) -> float:
    with open(metrics, newline="") as f:
        values = [float(row[column]) for row in csv.DictReader(f) if row.get(column)]
    if not values:
        raise SystemExit(f"{metrics}: no {column} logged")
    return values[-1]


def median_rate(metrics: Path) -> float:
    with open(metrics, newline="") as f:
        rates = [float(row["img_per_s"]) for row in csv.DictReader(f) if row.get("img_per_s")]
    return statistics.median(rates) if rates else float("nan")


def scores(run: Path, model: str) -> dict[str, float]:
    metrics = run / "metrics.csv"
    if model == "vae":
        return {"val ELBO": last_value(metrics, "val/elbo")}
    if model == "vqvae":
        return {"val PSNR": last_value(metrics, "val/psnr")}
    from genlab.eval.pixel_scores import evaluate_pixel_scores

    pixel = evaluate_pixel_scores(run, n=500, which="last")
    return {"FD": last_value(metrics, "fid"), "diversity": pixel["diversity"], "coverage": pixel["coverage"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    from genlab.config import load_config
    from genlab.io import atomic_write_json

    model = load_config(args.config, args.overrides).model.name
    family = model if model in ("vae", "vqvae") else "gan"
    table: dict[str, dict[int, dict[str, float]]] = {name: {} for name in SETTINGS}
    for seed in args.seeds:
        for name, setting in SETTINGS.items():
            run = args.out / f"{name}-seed{seed}"
            if not (run / "checkpoints" / "last.ckpt").is_file():
                cmd = [sys.executable, "-m", "genlab", "train", args.config, *args.overrides, *setting,
                       f"trainer.seed={seed}", f"output.runs_dir={args.out}", f"output.run_name={run.name}",
                       "trainer.progress_bar=false"]
                print("+", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
            table[name][seed] = {**scores(run, family), "img/s": median_rate(run / "metrics.csv")}
            print(name, seed, table[name][seed], flush=True)
    atomic_write_json(args.out / "equal_steps.json", {"config": args.config, "overrides": args.overrides,
                                                      "scores": table})
    figures = [k for k in table["float32"][args.seeds[0]] if k != "img/s"]
    print(f"| {args.config} | " + " | ".join(f"seed {s}" for s in args.seeds) + " | seed spread (float32) |")
    for name in SETTINGS:
        for fig in figures:
            row = [table[name][s][fig] for s in args.seeds]
            spread = max(row) - min(row) if name == "float32" else None
            print(f"| {name}: {fig} | " + " | ".join(f"{v:.3f}" for v in row) + " | "
                  + (f"{spread:.3f}" if spread is not None else "") + " |")
    for fig in figures:
        diffs = [table["auto"][s][fig] - table["float32"][s][fig] for s in args.seeds]
        print(f"auto - float32, {fig}: " + ", ".join(f"{d:+.3f}" for d in diffs))


if __name__ == "__main__":
    main()
