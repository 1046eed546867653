"""VQ-VAE on Tiny-ImageNet: held-out PSNR and codebook usage against CPU training time for
K = 128/256/512, with plain k-means on 2x2 RGB patches (the same K, the same bits per image) as
the reference measured in the same run; then the prior comparison table on the K=512 model.

    python benchmarks/vqvae_bench.py quality --codes 512 --budget 1800     # CPU-seconds per K
    python benchmarks/vqvae_bench.py quality --codes 128 256 --budget 600
    python benchmarks/vqvae_bench.py compare      # grids per K + table -> benchmarks/results/vqvae/
    python benchmarks/vqvae_bench.py priors --run /tmp/vqvae-bench/K512 --pixelcnn-minutes 25  # needs K=512
    python benchmarks/vqvae_bench.py fd-spread     # FD/KID over repeated draws: how much one value says

Training time is process CPU time (all threads; `time.process_time`), so the budget does not
depend on what else runs on the machine; wall time is printed beside it. The held-out split is
the library's own val split of ../shared/data/tinyimagenet (10,000 images -> 8,997 / 1,003).
Each trained model is written as a genlab run (checkpoints/best.ckpt), so the prior stage and the
CLI (`genlab codes`, `genlab prior`, `genlab prior-eval`) work on it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyimagenet" / "tiny-imagenet-200"
sys.path.insert(0, str(ROOT / "src"))

from genlab import __version__  # noqa: E402
from genlab.config import load_config  # noqa: E402
from genlab.data.registry import build_dataset  # noqa: E402
from genlab.io import atomic_path, atomic_write_json  # noqa: E402
from genlab.models.vqvae import psnr  # noqa: E402
from genlab.runs import Run  # noqa: E402
from genlab.train.base import CHECKPOINT_FORMAT  # noqa: E402
from genlab.train.vqvae_module import VQVAEModule, run_compression  # noqa: E402
from genlab.train.vqvae_sweep import compare_runs, held_out_quality  # noqa: E402


def load_split(cfg, split: str) -> torch.Tensor:
    ds = build_dataset(cfg.data, split, cfg.trainer.seed)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def patches(x: torch.Tensor) -> np.ndarray:
    """(N, 3, 64, 64) -> (N*32*32, 12) non-overlapping 2x2 RGB patches."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(-1, c * 4).numpy()


def unpatch(p: np.ndarray, n: int) -> torch.Tensor:
    return torch.from_numpy(p).reshape(n, 32, 32, 3, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(n, 3, 64, 64)


def kmeans_reference(train: torch.Tensor, val: torch.Tensor, k: int, seed: int = 0, fit_patches: int = 100_000):
    from sklearn.cluster import KMeans

    t_cpu, t_wall = time.process_time(), time.perf_counter()
    p = patches(train)
    rng = np.random.default_rng(seed)
    km = KMeans(k, n_init=1, max_iter=50, random_state=seed).fit(p[rng.choice(len(p), fit_patches, replace=False)])
    idx = km.predict(patches(val))
    recon = unpatch(km.cluster_centers_[idx].astype(np.float32), len(val))
    return {"psnr": float(psnr(val, recon).mean()), "usage": len(np.unique(idx)) / k,
            "cpu_s": time.process_time() - t_cpu, "wall_s": time.perf_counter() - t_wall}


def save_as_run(module: VQVAEModule, cfg, path: Path) -> Run:
    """A genlab run directory holding this model (what `genlab train` would have written)."""
    run = Run(path)
    run.prepare(cfg)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": {"config": cfg.to_dict()},
            "genlab": {"format": CHECKPOINT_FORMAT, "version": __version__, "model": "vqvae"}}
    with atomic_path(run.best_checkpoint) as tmp:
        torch.save(ckpt, tmp)
    run.set_status("finished", message="trained by benchmarks/vqvae_bench.py")
    return run


def train_vqvae(cfg, train: torch.Tensor, val: torch.Tensor, budget: float, every: float, log,
                snapshot=None) -> tuple:
    torch.manual_seed(cfg.trainer.seed)
    module = VQVAEModule(cfg)
    net, k = module.net, cfg.model.num_codes
    opt = module.configure_optimizers()
    gen = torch.Generator().manual_seed(cfg.trainer.seed)
    cpu = wall = 0.0
    step, next_eval, curve = 0, every, []
    while cpu < budget:
        batch = train[torch.randint(len(train), (cfg.data.batch_size,), generator=gen)]
        c0, w0 = time.process_time(), time.perf_counter()
        out = net(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        step += 1
        if cpu >= next_eval or cpu >= budget:
            next_eval += every
            point = {"K": k, "step": step, "images": step * cfg.data.batch_size, "cpu_s": round(cpu),
                     "wall_s": round(wall), **held_out_quality(net, val, k), "restarts": int(net.quantizer.restarts)}
            net.train()
            curve.append(point)
            log(point)
            if snapshot is not None:  # the latest model stays usable if the benchmark is stopped
                snapshot(module, curve)
    return module, curve


def cmd_quality(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    overrides = [f"data.root={DATA}", f"data.batch_size={args.batch_size}", f"optimizer.lr={args.lr}",
                 f"model.hidden={args.hidden}", f"model.res_blocks={args.res_blocks}", *args.overrides]
    base = load_config("vqvae-tinyimagenet", overrides)
    t0 = time.perf_counter()
    train, val = load_split(base, "train"), load_split(base, "val")
    print(f"# data: {len(train)} train / {len(val)} held-out images, loaded in {time.perf_counter() - t0:.0f}s",
          flush=True)
    rows = []
    for k in args.codes:
        cfg = load_config("vqvae-tinyimagenet", overrides + [f"model.num_codes={k}"])
        ref = kmeans_reference(train, val, k)
        print(f"# k-means K={k}: {json.dumps(ref)}", flush=True)
        def snapshot(module, curve, k=k, cfg=cfg, ref=ref):
            run = save_as_run(module, cfg, out / f"K{k}")
            atomic_write_json(run.eval / "bench_curve.json", {"curve": curve, "kmeans": ref})

        module, curve = train_vqvae(cfg, train, val, args.budget, args.eval_every,
                                    lambda p: print("#", json.dumps(p), flush=True), snapshot)
        final = curve[-1]
        rows.append((k, ref, final, run_compression(cfg)["ratio"], curve))
    print("\n| K | compression | k-means 2x2 PSNR | VQ-VAE PSNR (final) | VQ-VAE - k-means | usage | "
          "CPU-s | wall-s | images seen | first CPU-s at >= k-means PSNR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, ref, final, ratio, curve in rows:
        beat = next((p["cpu_s"] for p in curve if p["psnr"] > ref["psnr"]), None)
        print(f"| {k} | {ratio:.1f}x | {ref['psnr']:.2f} dB | {final['psnr']:.2f} dB | "
              f"{final['psnr'] - ref['psnr']:+.2f} dB | {final['usage']:.1%} | {final['cpu_s']} | "
              f"{final['wall_s']} | {final['images']} | {beat if beat is not None else 'never'} |")
    print(f"\ncommand: python {shlex.join(sys.argv)}")


def cmd_priors(args) -> None:
    from genlab.eval.codes import write_code_maps
    from genlab.eval.priors import evaluate_priors, format_table
    from genlab.train.prior_module import train_prior

    torch.set_num_threads(args.threads)
    run = Run.open(args.run)
    cfg = run.config()
    overrides = []
    if args.pixelcnn_epochs:
        overrides.append(f"model.priors.pixelcnn.epochs={args.pixelcnn_epochs}")
    if args.vae_epochs:
        overrides.append(f"model.priors.vae.epochs={args.vae_epochs}")
    overrides += args.overrides
    overrides.append(f"model.priors.eval_samples={args.samples}")
    from genlab.config import apply_overrides

    cfg = apply_overrides(cfg, overrides, "bench")
    run.prepare(cfg)
    times = {}
    c0, w0 = time.process_time(), time.perf_counter()
    write_code_maps(run.path)
    times["codes"] = (time.process_time() - c0, time.perf_counter() - w0)
    for kind in args.kinds:
        c0, w0 = time.process_time(), time.perf_counter()
        minutes = {"vae": args.vae_minutes, "pixelcnn": args.pixelcnn_minutes}.get(kind)
        train_prior(run.path, kind, cfg, progress=False, max_steps=args.max_steps, max_minutes=minutes)
        times[kind] = (time.process_time() - c0, time.perf_counter() - w0)
        print(f"# trained {kind}: {times[kind][0]:.0f} CPU-s, {times[kind][1]:.0f} wall-s", flush=True)
    c0, w0 = time.process_time(), time.perf_counter()
    result = evaluate_priors(run.path, kinds=args.kinds, n_samples=args.samples, seed=0)
    print(f"# evaluation: {time.process_time() - c0:.0f} CPU-s, {time.perf_counter() - w0:.0f} wall-s")
    print(format_table(result))
    from genlab.viz.report import write_report

    print(f"# report: {write_report([run.path])}")
    publish([run.eval / "priors.md", *sorted(run.samples.glob("prior_*.png"))])
    print("\ntraining time (CPU-s / wall-s): " + ", ".join(f"{k} {c:.0f}/{w:.0f}" for k, (c, w) in times.items()))
    print(f"\ncommand: python {shlex.join(sys.argv)}")


RESULTS_DIR = ROOT / "benchmarks" / "results" / "vqvae"


def publish(paths: list[Path]) -> None:
    """Copy result files into benchmarks/results/vqvae/; sample grids (not reconstructions, where
    compression artefacts would confound the comparison) go in as JPEG to keep the repo small."""
    import shutil

    from PIL import Image

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.name.startswith("prior_") and path.suffix == ".png":
            Image.open(path).convert("RGB").save(RESULTS_DIR / f"{path.stem}.jpg", quality=90)
        else:
            shutil.copy(path, RESULTS_DIR / path.name)
    print(f"# copied {len(paths)} files to {RESULTS_DIR}")


def cmd_compare(args) -> None:
    """The sweep's side-by-side comparison (grids per K, PSNR/usage/compression table) of the
    quality stage's runs in --out; the table and the images are copied into benchmarks/results/vqvae/."""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    runs = {int(p.name[1:]): Run.open(p) for p in sorted(out.glob("K*"), key=lambda p: int(p.name[1:]))}
    if not runs:
        raise SystemExit(f"no K* runs in {out}: run the quality stage first")
    root = compare_runs(out, runs, run_compression)
    # every K has a row in comparison.png; of the 50-image grids (~1 MB each) only the largest K's is kept
    publish([root / "comparison.png", root / "comparison.md", root / f"grid_K{max(runs)}.png"])
    print((root / "comparison.md").read_text())
    print(f"command: python {shlex.join(sys.argv)}")


def cmd_fd_spread(args) -> None:
    """FD/KID of several independent draws of N samples from each trained prior, against the same
    real statistics: how far one FD/KID number can be trusted with these features and this N."""
    from genlab.eval.priors import decode_maps, fd_kid, held_out_evaluator
    from genlab.models.priors import sample_maps

    torch.set_num_threads(args.threads)
    run = Run.open(args.run)
    net = run.load_model()
    evaluator, n = held_out_evaluator(run.config(), run, args.samples)
    print(f"# features: {evaluator.extractor.label}; N = {n}")
    print("| prior | draw | FD | KID |\n|---|---|---|---|")
    for kind in args.kinds:
        prior = run.load_prior(kind)
        fds = []
        for draw in range(args.draws):
            maps = sample_maps(prior, n, generator=torch.Generator().manual_seed(1000 + draw))
            r = fd_kid(evaluator, decode_maps(net, maps))
            fds.append(r["fd"])
            print(f"| {kind} | {draw} | {r['fd']:.1f} | {r['kid']:.3f} +- {r['kid_std']:.3f} |", flush=True)
        if len(fds) > 1:
            print(f"| {kind} | mean +- sd over {len(fds)} | {np.mean(fds):.1f} +- {np.std(fds, ddof=1):.1f} | |")
    print(f"\ncommand: python {shlex.join(sys.argv)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--codes", type=int, nargs="+", default=[128, 256, 512])
    q.add_argument("--budget", type=float, default=1800, help="CPU-seconds of training per K")
    q.add_argument("--eval-every", type=float, default=150, help="CPU-seconds between held-out evaluations")
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--hidden", type=int, default=64)
    q.add_argument("--res-blocks", type=int, default=2)
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("--out", default="/tmp/vqvae-bench")
    q.add_argument("overrides", nargs="*", help="config overrides, e.g. model.decay=0.95")
    q.set_defaults(func=cmd_quality)
    c = sub.add_parser("compare")
    c.add_argument("--out", default="/tmp/vqvae-bench")
    c.add_argument("--threads", type=int, default=2)
    c.set_defaults(func=cmd_compare)
    f = sub.add_parser("fd-spread")
    f.add_argument("--run", default="/tmp/vqvae-bench/K512")
    f.add_argument("--kinds", nargs="+", default=["gmm", "pixelcnn"])
    f.add_argument("--samples", type=int, default=500)
    f.add_argument("--draws", type=int, default=3)
    f.add_argument("--threads", type=int, default=2)
    f.set_defaults(func=cmd_fd_spread)
    r = sub.add_parser("priors")
    r.add_argument("--run", default="/tmp/vqvae-bench/K512")
    r.add_argument("--kinds", nargs="+", default=["gmm", "vae", "pixelcnn"])
    r.add_argument("--samples", type=int, default=500, help="decoded samples per prior (and real images) for FD/KID")
    r.add_argument("--pixelcnn-epochs", type=int, default=None)
    r.add_argument("--vae-epochs", type=int, default=None)
    r.add_argument("--max-steps", type=int, default=-1, help="cap on optimiser steps per neural prior")
    r.add_argument("--pixelcnn-minutes", type=float, default=None, help="wall-time budget of the PixelCNN")
    r.add_argument("--vae-minutes", type=float, default=None, help="wall-time budget of the code VAE")
    r.add_argument("overrides", nargs="*", help="config overrides, e.g. model.priors.pixelcnn.hidden=32")
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(func=cmd_priors)
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the benchmark needs the shared Tiny-ImageNet sample)")
        return
    args.func(args)


if __name__ == "__main__":
    main()
