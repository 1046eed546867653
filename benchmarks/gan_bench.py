"""GAN benchmarks on real Bitmoji faces (../shared/data/bitmoji; skipped without it).

1. Throughput: training images/s of `genlab.train.runner.train` (GANModule, all the run's
   callbacks, no FID) against a minimal hand-written PyTorch loop with the same networks, batch,
   data tensor and update rule, measured in the same process, alternating.
2. Equal CPU budget: DCGAN, LSGAN and BiGAN, plus DCGAN with an EMA generator (the same run,
   scored with both generators) and DCGAN with DiffAugment, each trained for the same process CPU
   time; FD (fallback Inception features: NOT comparable to published FIDs) at fixed fractions of
   the budget, and final sample grids.

    .venv/bin/python benchmarks/gan_bench.py [--budget 300] [--size 32] [--width 16]

Prints markdown tables; grids and the FD plot go to --out (default benchmarks/results/gan).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bitmoji"


def load_bitmoji(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from genlab.data.images import image_dataset

    out = []
    for split in ("train", "val"):
        ds = image_dataset("bitmoji", str(DATA), split, image_size=size, channels=3, cache=True, val_fraction=0.05)
        out.append(torch.stack([ds[i][0] for i in range(len(ds))]))
    return out[0], out[1]


def use_tensors(train: torch.Tensor, val: torch.Tensor) -> None:
    """Both loops read the same in-memory tensors (no JPEG decoding in the measurement)."""
    from torch.utils.data import TensorDataset

    from genlab.data import registry

    sets = {"train": TensorDataset(train, torch.zeros(len(train))), "val": TensorDataset(val, torch.zeros(len(val)))}
    registry.BUILDERS["bitmoji"] = lambda cfg, split, seed: sets[split]


def config(model: str, args, runs: Path, *overrides: str):
    from genlab.config import load_config

    return load_config(f"{model}-bitmoji", [
        f"data.image_size={args.size}", f"model.g_width={args.width}", f"model.d_width={args.width}",
        f"data.batch_size={args.batch}", "data.cache=false", "trainer.progress_bar=false", "trainer.accelerator=cpu",
        "model.fid.every_n_epochs=0", "model.fid.final_n=0", f"output.runs_dir={runs}", "trainer.max_epochs=1000",
        *overrides])


# --- 1. throughput --------------------------------------------------------------------------------
class _Clock:
    """From the start of batch `skip` to the end of the last batch (warm-up excluded): wall time, and
    process CPU time, which other jobs on a shared machine disturb much less."""

    def __init__(self, skip: int = 1):
        self.skip, self.t0, self.t1, self.c0, self.c1, self.images = skip, None, None, None, None, 0

    def start(self, i):
        if i == self.skip:
            self.t0, self.c0 = time.perf_counter(), time.process_time()

    def end(self, i, n):
        if i >= self.skip:
            self.images += n
            self.t1, self.c1 = time.perf_counter(), time.process_time()

    @property
    def rate(self):
        return self.images / (self.t1 - self.t0), self.images / (self.c1 - self.c0)


def lightning_rate(model: str, args, runs: Path, batches: int) -> float:
    import lightning as L

    from genlab.train.runner import train

    clock = _Clock()

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, i):
            clock.start(i)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, i):
            clock.end(i, batch[0].shape[0])

    train(config(model, args, runs, "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}"),
          extra_callbacks=[Timer()])
    return clock.rate


def hand_rate(model: str, args, train_x: torch.Tensor, batches: int) -> float:
    """pytorch/examples-style loop: same networks, batch, data order rule, Adam and update rule."""
    from torch.utils.data import DataLoader, TensorDataset

    from genlab.models.bigan import BiGAN, generator_encoder_loss
    from genlab.models.dcgan import DCGAN, discriminator_loss, generator_loss

    torch.manual_seed(0)
    net = (BiGAN if model == "bigan" else DCGAN)(100, 3, args.size, args.width, args.width)
    kind = "ls" if model == "lsgan" else "bce"
    g_params = list(net.generator.parameters()) + (list(net.encoder.parameters()) if model == "bigan" else [])
    opt_g = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(TensorDataset(train_x, torch.zeros(len(train_x))), batch_size=args.batch, shuffle=True)
    G, D = net.generator, net.discriminator
    clock = _Clock()
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        clock.start(i)
        x = x * 2 - 1
        z = torch.randn(x.shape[0], 100)
        fake = G(z)
        if model == "bigan":
            code = net.encoder(x)
            d_loss = discriminator_loss(D(x, code.detach()), D(fake.detach(), z))
        else:
            d_loss = discriminator_loss(D(x), D(fake.detach()), kind)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = generator_encoder_loss(D(x, code), D(fake, z)) if model == "bigan" else generator_loss(D(fake), kind)
        D.requires_grad_(True)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        float(d_loss.detach()), float(g_loss.detach())  # the Lightning module reads both losses for logging too
        clock.end(i, x.shape[0])
    return clock.rate


def throughput(args, train_x, runs) -> list[str]:
    rows = ["| model | batch | hand-written loop img/s (wall) | genlab img/s (wall) | ratio (wall) | "
            "hand img per CPU-s | genlab img per CPU-s | ratio (CPU time) |", "|---|---|---|---|---|---|---|---|"]
    for model in args.throughput_models:
        hand, light = [], []
        for _ in range(args.rounds):  # alternate, so machine load hits both alike
            hand.append(hand_rate(model, args, train_x, args.batches + 1))
            light.append(lightning_rate(model, args, runs, args.batches + 1))
        hw, lw = max(r[0] for r in hand), max(r[0] for r in light)
        hc, lc = max(r[1] for r in hand), max(r[1] for r in light)
        rows.append(f"| {model} | {args.batch} | {hw:.2f} | {lw:.2f} | {lw / hw:.3f} | {hc:.2f} | {lc:.2f} | {lc / hc:.3f} |")
        print(rows[-1], flush=True)
    return rows


# --- 2. equal CPU budget ----------------------------------------------------------------------------
def budget_runs(args, train_x, runs, out: Path) -> list[str]:
    import lightning as L

    from genlab.eval.fid import FIDEvaluator
    from genlab.train.runner import train
    from genlab.viz.grids import save_grid

    real = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:args.n]]
    evaluator = FIDEvaluator.for_dataset(real, dataset_id=f"gan-bench-bitmoji-{args.size}", n=args.n,
                                         fallback=True, dims=args.dims, batch_size=50, cache=False)
    label = evaluator.extractor.label
    noise = torch.randn(args.n, 100, generator=torch.Generator().manual_seed(1))

    @torch.no_grad()
    def score(generator) -> float:
        was = generator.training
        generator.eval()
        fake = torch.cat([(generator(z) + 1).div(2).clamp(0, 1) for z in noise.split(100)])
        generator.train(was)
        return evaluator(fake).value

    class Budget(L.Callback):
        """Stops at `budget` CPU-seconds of training; scores FD at each fraction (not counted)."""

        def __init__(self, name):
            self.name, self.spent, self.curve, self.next = name, 0.0, [], 1
            self.t = None

        def on_train_batch_start(self, trainer, pl_module, batch, i):
            self.t = time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, i):
            self.spent += time.process_time() - self.t
            if self.spent >= args.budget * self.next / args.points:
                point = {"cpu_s": round(self.spent, 1), "batches": trainer.fit_loop.epoch_loop.total_batch_idx + 1,
                         "fd": score(pl_module.net.generator)}
                if pl_module.g_ema is not None:
                    point["fd_ema"] = score(pl_module.g_ema.module)
                self.curve.append(point)
                print(self.name, point, flush=True)
                self.next += 1
                if self.next > args.points:
                    trainer.should_stop = True
                    grid = [pl_module.net.generator] + ([pl_module.g_ema.module] if pl_module.g_ema is not None else [])
                    for j, g in enumerate(grid):
                        g.eval()
                        with torch.no_grad():
                            save_grid((g(noise[:64]) + 1) / 2, out / f"{self.name}{'-ema' if j else ''}.png", nrow=8)
                        g.train()

    variants = {"dcgan (+EMA 0.999 scored alongside)": ("dcgan", ["model.ema=0.999"]),
                "lsgan": ("lsgan", []), "bigan": ("bigan", []),
                "dcgan + DiffAugment": ("dcgan", ["model.diffaugment=color,translation,cutout"])}
    if args.variants:
        variants = {k: v for k, v in variants.items() if any(k.startswith(w) for w in args.variants)}
    results = {}
    for name, (model, extra) in variants.items():
        cb = Budget(name.split(" ")[0] + ("-diffaug" if "Diff" in name else ""))
        train(config(model, args, runs, *extra), extra_callbacks=[cb])
        results[name] = cb.curve
    (out / "budget_curves.json").write_text(json.dumps({"extractor": label, "n": args.n, "results": results}, indent=1))
    _plot(results, label, out / "fd_curves.png")

    head = "| model | " + " | ".join(f"FD @ {k}/{args.points} budget" for k in range(1, args.points + 1)) + \
        " | batches in budget |"
    rows = [f"FD: {label}, {args.dims}-d, N = {args.n} generated vs {args.n} real, the same noise throughout.",
            "", head, "|---|" + "---|" * (args.points + 1)]
    for name, curve in results.items():
        rows.append(f"| {name} | " + " | ".join(f"{p['fd']:.3g}" for p in curve) + f" | {curve[-1]['batches']} |")
        if curve and "fd_ema" in curve[0]:
            rows.append("| dcgan, EMA generator (same run) | " + " | ".join(f"{p['fd_ema']:.3g}" for p in curve) +
                        f" | {curve[-1]['batches']} |")
    return rows


def _plot(results, label, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, curve in results.items():
        ax.plot([p["cpu_s"] for p in curve], [p["fd"] for p in curve], "o-", label=name)
        if curve and "fd_ema" in curve[0]:
            ax.plot([p["cpu_s"] for p in curve], [p["fd_ema"] for p in curve], "o--", label="dcgan EMA generator")
    ax.set_xlabel("training CPU seconds")
    ax.set_ylabel("FD (fallback features)")
    ax.set_title("NOT comparable to published FIDs", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32, help="image side (the study: 64)")
    p.add_argument("--width", type=int, default=16, help="g_width = d_width (the study: 64)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--budget", type=float, default=300, help="training CPU-seconds per model")
    p.add_argument("--points", type=int, default=3, help="FD evaluations per run")
    p.add_argument("--n", type=int, default=200, help="generated and real images per FD")
    p.add_argument("--dims", type=int, default=64, help="fallback Inception feature dims")
    p.add_argument("--batches", type=int, default=3, help="measured batches per throughput run")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--throughput-models", nargs="*", default=["dcgan", "bigan"])
    p.add_argument("--variants", nargs="*", default=None,
                   help="budget runs to do, by name prefix: 'dcgan (' 'lsgan' 'bigan' 'dcgan +' (default all)")
    p.add_argument("--skip", choices=["throughput", "budget"], action="append", default=[])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gan")
    args = p.parse_args()
    if not (DATA / "images").is_dir():
        print(f"skipped: {DATA} not found (real Bitmoji images are needed)")
        return 0
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Path("/tmp/genlab-gan-bench")
    train_x, val_x = load_bitmoji(args.size)
    use_tensors(train_x, val_x)
    print(f"Bitmoji: {len(train_x)} train / {len(val_x)} val images at {args.size}x{args.size}; "
          f"torch threads {torch.get_num_threads()}\n", flush=True)
    if "throughput" not in args.skip:
        print("\n".join(throughput(args, train_x, runs)) + "\n", flush=True)
    if "budget" not in args.skip:
        print("\n".join(budget_runs(args, train_x, runs, args.out)), flush=True)
    print(f"\ncommand: .venv/bin/python benchmarks/gan_bench.py {' '.join(sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
