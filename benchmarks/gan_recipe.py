"""GAN recipe vs the study's settings, on Bitmoji images held out from training (issue 12).

Trains the study's DCGAN settings (configs/dcgan-bitmoji.yaml) and genlab's recipe
(configs/dcgan-bitmoji-recipe.yaml: DiffAugment + an EMA generator) for the SAME budget of
process CPU-seconds of training each (wall time on the shared machine is too noisy), both with the
same `data.holdout` images kept out of training, then scores each with
`genlab.eval.gan_quality.evaluate_gan_quality`: FD, KID (+ se), improved precision and recall (k = 3)
of N generated vs N held-out real images on one shared feature extractor (the fallback Inception
network when the real weights are absent: NOT comparable to published FIDs). Writes a side-by-side
grid of held-out real images and samples of both from the same noise.

    .venv/bin/python benchmarks/gan_recipe.py --width 16 --n 250     # study: 10 epochs; recipe: the same CPU-s

Rerunning skips what is done: a finished run is not trained again, a scored one not scored again
(--rescore to redo the scores). Ctrl-C stops it; rerun to continue (an interrupted training run starts again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bitmoji"
VARIANTS = {"study": "dcgan-bitmoji", "recipe": "dcgan-bitmoji-recipe"}


class CPUBudget(L.Callback):
    """Stops training once the process has used `budget` CPU-seconds since training started
    (None: no limit, only measure). Records the CPU and wall seconds and the batches done."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.cpu0 = self.wall0 = 0.0
        self.batches = 0
        self.cpu = self.wall = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.cpu, self.wall = time.process_time() - self.cpu0, time.perf_counter() - self.wall0
        if self.budget is not None and self.cpu >= self.budget:
            trainer.should_stop = True


def config(variant: str, args: argparse.Namespace, runs: Path, max_epochs: int):
    from genlab.config import load_config

    return load_config(VARIANTS[variant], [
        f"data.root={args.data}", f"data.holdout={args.holdout}", f"model.g_width={args.width}",
        f"model.d_width={args.width}", "model.fid.every_n_epochs=0", "model.fid.final_n=0",
        f"trainer.max_epochs={max_epochs}", "trainer.progress_bar=false", "trainer.accelerator=cpu",
        f"output.runs_dir={runs}", f"output.run_name={variant}"])


def train_variant(variant: str, args: argparse.Namespace, runs: Path, budget_s: float | None,
                  max_epochs: int) -> dict:
    from genlab.runs import Run
    from genlab.train.runner import train

    path = runs / variant
    record_path = path / "eval" / "budget.json"
    if record_path.is_file() and Run.open(path).status().get("status") == "finished":
        print(f"[{variant}] already trained: {json.loads(record_path.read_text())}", flush=True)
        return json.loads(record_path.read_text())
    if path.exists():  # an unfinished run: its CPU count is lost, so it starts again
        print(f"[{variant}] {path} did not finish; training it again from scratch", flush=True)
        shutil.rmtree(path)
    budget = CPUBudget(budget_s)
    limit = f"{budget_s:.0f} CPU-s" if budget_s is not None else f"{max_epochs} epochs"
    print(f"[{variant}] training {VARIANTS[variant]} for {limit}", flush=True)
    train(config(variant, args, runs, max_epochs), extra_callbacks=[budget])
    record = {"cpu_s": round(budget.cpu, 1), "wall_s": round(budget.wall, 1), "batches": budget.batches,
              "budget_cpu_s": budget_s, "max_epochs": max_epochs}
    from genlab.io import atomic_write_json

    atomic_write_json(record_path, record)
    print(f"[{variant}] {record}", flush=True)
    return record


def side_by_side(panels: list[tuple[str, torch.Tensor]], out: Path, nrow: int) -> None:
    """Labelled grids next to each other, one PNG (written atomically)."""
    import numpy as np
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    from genlab.io import atomic_path

    tiles = []
    for label, images in panels:
        grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
        arr = (grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        tile = Image.new("RGB", (arr.shape[1], arr.shape[0] + 22), "white")
        tile.paste(Image.fromarray(arr), (0, 22))
        ImageDraw.Draw(tile).text((4, 5), label, fill="black")
        tiles.append(tile)
    gap = 12
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), max(t.height for t in tiles)),
                       "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + gap
    with atomic_path(out) as tmp:
        canvas.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(tmp, format="PNG", optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--budget", type=float, default=None, help="process CPU-seconds of training per variant")
    p.add_argument("--study-epochs", type=int, default=10,
                   help="without --budget: the study's run trains this many epochs (its setting: 10) and the "
                        "recipe gets the CPU-seconds that took")
    p.add_argument("--width", type=int, default=64, help="g_width = d_width (the study's: 64)")
    p.add_argument("--holdout", type=int, default=500)
    p.add_argument("--n", type=int, default=300, help="generated and held-out real images scored per variant")
    p.add_argument("--dims", type=int, default=2048)
    p.add_argument("--max-epochs", type=int, default=1000, help="the CPU budget normally stops training first")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gan_recipe"))
    p.add_argument("--png", default=str(ROOT / "docs" / "gan_recipe.png"))
    p.add_argument("--rescore", action="store_true")
    p.add_argument("--raw-generator", action="store_true",
                   help="also score the recipe's raw generator (the EMA copy is what it samples from)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a loaded 2-core machine, 2 threads spin and cost ~6x the CPU)")
    args = p.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"Bitmoji not found at {args.data} (pass --data PATH)")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    runs = out / "runs"

    if args.budget is not None:
        budgets = {v: train_variant(v, args, runs, args.budget, args.max_epochs) for v in VARIANTS}
    else:
        budgets = {"study": train_variant("study", args, runs, None, args.study_epochs)}
        budgets["recipe"] = train_variant("recipe", args, runs, budgets["study"]["cpu_s"], args.max_epochs)

    from genlab.eval.features import choose_extractor, fallback_extractor, inception_extractor
    from genlab.eval.gan_quality import evaluate_gan_quality, real_images
    from genlab.runs import Run

    real, _ = real_images(Run.open(runs / "study"), args.n)
    extractor = None
    scores = {}
    for v in VARIANTS:
        saved = runs / v / "eval" / "quality.json"
        if saved.is_file() and not args.rescore:
            scores[v] = json.loads(saved.read_text())
            continue
        if extractor is None:  # one extractor for both: the fallback is calibrated on the held-out images
            print("building the feature extractor", flush=True)
            extractor = (inception_extractor(None, args.dims) if choose_extractor("auto") == "inception"
                         else fallback_extractor(real, seed=0, dims=args.dims))
        print(f"[{v}] scoring {args.n} samples against {args.n} held-out images", flush=True)
        scores[v] = evaluate_gan_quality(runs / v, n=args.n, seed=0, which="last", extractor=extractor)
    raw_path = out / "recipe_raw_generator.json"
    if args.raw_generator and (args.rescore or not raw_path.is_file()):
        if extractor is None:
            print("building the feature extractor", flush=True)
            extractor = (inception_extractor(None, args.dims) if choose_extractor("auto") == "inception"
                         else fallback_extractor(real, seed=0, dims=args.dims))
        raw = Run.open(runs / "recipe").load_model("last")
        raw.ema_generator = None  # sample from the trained generator itself
        print(f"[recipe, raw generator] scoring {args.n} samples", flush=True)
        from genlab.io import atomic_write_json as write_json

        write_json(raw_path, evaluate_gan_quality(runs / "recipe", n=args.n, seed=0, which="last",
                                                  extractor=extractor, write=False, model=raw))
    if raw_path.is_file():
        scores["recipe, raw generator"] = json.loads(raw_path.read_text())
    ids = {s["extractor_id"] for s in scores.values()}
    if len(ids) > 1:
        raise SystemExit(f"the variants were scored with different extractors ({ids}); rerun with --rescore")

    panels = [("held-out real images", real[:36])]
    for v in VARIANTS:
        model = Run.open(runs / v).load_model("last")
        z = model.noise(36, torch.Generator().manual_seed(123))
        panels.append((f"{v} ({VARIANTS[v]}), {budgets[v]['batches']} batches", model.sample(z)))
    side_by_side(panels, Path(args.png), nrow=6)

    table = {"args": vars(args), "budgets": budgets, "scores": scores}
    from genlab.io import atomic_write_json

    atomic_write_json(out / "results.json", table)
    s = next(iter(scores.values()))
    print(f"\nfeatures: {s['extractor']} [{s['dims']}-d]; N = {s['n_fake']} generated vs {s['n_real']} held-out real")
    print("| variant | batches | CPU-s | wall s | FD | KID x 1e3 (± se) | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for v in scores:
        b, q = budgets[v.split(",")[0]], scores[v]
        print(f"| {v} ({VARIANTS[v.split(',')[0]]}) | {b['batches']} | {b['cpu_s']:.0f} | {b['wall_s']:.0f} | {q['fd']:.2f} | "
              f"{q['kid'] * 1e3:.2f} ± {q['kid_se'] * 1e3:.2f} | {q['precision']:.3f} | {q['recall']:.3f} |")
    print(f"grid: {args.png}")


if __name__ == "__main__":
    main()
