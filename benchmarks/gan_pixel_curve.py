"""A GAN run's pixel diversity and coverage against CPU-minutes (issue 20: the recipe's curve).

Reads the per-epoch scores that the FID callback writes beside each FD when the run holds images
out (RUN/eval/fid.json: `pixel_diversity`, `pixel_coverage`, 500 samples against 500 held-out
images at 32x32), the wall time at the end of each epoch (the epoch's sample grid, written then;
from the run's config.yaml, written when it started) and, for a study stage, the CPU-to-wall ratio
of its training step (state.json). Prints a markdown table and draws the two curves with the issue's
targets (diversity 0.8, coverage 0.25).

    .venv/bin/python benchmarks/gan_pixel_curve.py STUDY_DIR/dcgan-recipe [--out docs/study_recipe_curve.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = {"pixel_diversity": 0.8, "pixel_coverage": 0.25}


def curve(run: Path) -> tuple[list[dict], float]:
    history = json.loads((run / "eval" / "fid.json").read_text())["history"]
    rows = [h for h in history if "pixel_diversity" in h]
    if not rows:
        raise SystemExit(f"{run}: no pixel scores in eval/fid.json (train with data.holdout=N)")
    start = (run / "config.yaml").stat().st_mtime
    state = run.parent / "state.json"
    ratio = 1.0
    if state.is_file():
        train = json.loads(state.read_text())["stages"].get(run.name, {}).get("steps", {}).get("train")
        if train and train["seconds"] > 0:
            ratio = train["cpu_seconds"] / train["seconds"]
    for h in rows:
        grid = run / "samples" / f"epoch_{h['epoch']:03d}.png"
        h["wall_min"] = (grid.stat().st_mtime - start) / 60
        h["cpu_min"] = h["wall_min"] * ratio
    return rows, ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows, ratio = curve(args.run)
    print(f"{args.run}: CPU/wall ratio of training {ratio:.2f}")
    print("| epoch | wall-min | CPU-min | FD | pixel diversity | coverage |\n|---:|---:|---:|---:|---:|---:|")
    for h in rows:
        print(f"| {h['epoch'] + 1} | {h['wall_min']:.1f} | {h['cpu_min']:.1f} | {h['fid']:.1f} | "
              f"{h['pixel_diversity']:.3f} | {h['pixel_coverage']:.3f} |")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        for key, label in (("pixel_diversity", "pixel diversity"), ("pixel_coverage", "coverage")):
            line, = ax.plot([h["cpu_min"] for h in rows], [h[key] for h in rows], "o-", label=label)
            ax.axhline(TARGETS[key], color=line.get_color(), ls="--", lw=1, label=f"target {TARGETS[key]}")
        ax.set_xlabel("CPU-minutes of training (2 cores)")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{args.run.name}: 500 samples vs 500 held-out faces, 32x32", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = args.out.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(args.out)  # atomic: a half-written picture never replaces a good one


if __name__ == "__main__":
    main()
