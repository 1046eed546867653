"""Demo sample quality (issue 12): do a trained dSprites VAE's samples look like sprites?

For each run: 100 seeded samples (`genlab.eval.sprites.sprite_quality`), binarised at 0.5, each
matched to the best of all 737,280 rendered dSprites sprites by IoU (one chunked float32 matrix
product over the rendered set, built once into the cache); the mean best IoU, the fraction of
empty samples (no pixel on), for the run's configured prior and for N(0, I); the training budget
read back from the run (steps, images, images/s, seconds per step); and a grid of the binarised
samples above their best-matching sprites (RUN/eval/sprite_matches.png, copied to --out).

    .venv/bin/python benchmarks/demo_quality.py RUN [RUN ...] [--n 100] [--seed 0]
                                               [--out benchmarks/results/demo_quality]
    .venv/bin/python benchmarks/demo_quality.py --speed [--steps 8] [--repeats 3]

Prints a markdown table (target for the demo: mean best IoU >= 0.75, at most 5% empty).
`--speed`: training images/s of the demo's model at batch 64 against batch 128 (the old demo's),
the two alternating in one process so that a shared machine's load hits both; the ratio times a
quiet machine's batch-128 rate gives the demo's quiet training time.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path

from genlab.data import dsprites
from genlab.eval.sprites import sprite_quality
from genlab.runs import Run

ROOT = Path(__file__).resolve().parents[1]


def budget(run: Run) -> dict:
    """The scored checkpoint's steps and epochs, the images they saw, and the logged training rate
    up to that step (metrics.csv)."""
    import torch

    from genlab.data.registry import build_dataset

    ckpt = torch.load(run.checkpoint("best"), map_location="cpu", weights_only=True)
    steps, epochs = int(ckpt["global_step"]), int(ckpt["epoch"]) + 1
    cfg = run.config()
    n_train = len(build_dataset(cfg.data, "train", seed=cfg.trainer.seed))
    rates = []
    with open(run.metrics_path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("img_per_s") and row.get("step") and int(float(row["step"])) <= steps:
                rates.append(float(row["img_per_s"]))
    rate = sorted(rates)[len(rates) // 2] if rates else float("nan")
    return {"steps": steps, "epochs": epochs, "batch": cfg.data.batch_size, "images": epochs * n_train,
            "img_per_s": rate, "s_per_step": cfg.data.batch_size / rate if rates else float("nan")}


def speed(steps: int, repeats: int) -> None:
    import statistics

    import torch

    from genlab.models.vae import ConvVAE

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(128 * steps, 1, 64, 64, generator=g) > 0.93).float()
    rates: dict[int, list[float]] = {64: [], 128: []}
    for r in range(repeats):
        for batch in (128, 64) if r % 2 == 0 else (64, 128):
            torch.manual_seed(0)
            model = ConvVAE(1, 64, 128, likelihood="bernoulli")
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.elbo(x[:batch])["loss"].backward()  # warm-up step, not timed
            t = time.perf_counter()
            n = 0
            for xb in x.split(batch):  # the same images at either batch size
                opt.zero_grad()
                model.elbo(xb)["loss"].backward()
                opt.step()
                n += len(xb)
            rates[batch].append(n / (time.perf_counter() - t))
        print(f"repeat {r + 1}: batch 128 {rates[128][-1]:.1f} img/s, batch 64 {rates[64][-1]:.1f} img/s", flush=True)
    ratios = [a / b for a, b in zip(rates[64], rates[128])]
    print(f"images/s at batch 64 over batch 128: median {statistics.median(ratios):.3f} "
          f"({', '.join(f'{v:.3f}' for v in ratios)})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="run directories of dSprites VAE runs")
    p.add_argument("--speed", action="store_true", help="batch 64 vs batch 128 training speed, then exit")
    p.add_argument("--steps", type=int, default=8, help="--speed: batch-128 steps' worth of images per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_quality"))
    a = p.parse_args(argv)
    if a.speed:
        speed(a.steps, a.repeats)
        return
    if not a.runs:
        p.error("give run directories (or --speed)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    cached = dsprites.cache_path().exists()
    dsprites.load_all()
    print(f"rendered set: {'cached' if cached else f'rendered in {time.perf_counter() - t:.1f} s'}")

    rows = []
    for path in a.runs:
        run = Run.open(path)
        cfg = run.config()
        t = time.perf_counter()
        q = sprite_quality(run.path, n=a.n, seed=a.seed, grid=run.eval / "sprite_matches.png")
        took = time.perf_counter() - t
        grid = out / f"{run.path.name}.png"
        shutil.copyfile(q["grid"], grid)
        b = budget(run)
        std = q.get("standard", q)
        rows.append((run.path.name, cfg.model.likelihood, b, q, std, took, grid))
        print(f"{run.path.name}: {q['prior']} {q['mean_iou']:.3f} / {q['empty_fraction']:.0%} empty; "
              f"N(0, I) {std['mean_iou']:.3f} / {std['empty_fraction']:.0%}; scored in {took:.1f} s", flush=True)

    print()
    print("| run | likelihood | steps of batch (epochs x train images) | train img/s (s/step) | prior | mean best IoU | % empty "
          "| N(0, I): mean best IoU | N(0, I): % empty | scoring s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, lik, b, q, std, took, _grid in rows:
        print(f"| {name} | {lik} | {b['steps']} of {b['batch']} ({b['epochs']} x {b['images'] // b['epochs']:,}) "
              f"| {b['img_per_s']:.0f} "
              f"({b['s_per_step']:.2f}) | {q['prior']} | **{q['mean_iou']:.3f}** | {100 * q['empty_fraction']:.0f} "
              f"| {std['mean_iou']:.3f} | {100 * std['empty_fraction']:.0f} | {took:.0f} |")
    print()
    for name, *_, grid in rows:
        print(f"- {name}: {grid.relative_to(ROOT) if grid.is_relative_to(ROOT) else grid}")


if __name__ == "__main__":
    main()
