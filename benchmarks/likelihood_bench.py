"""Marginal-likelihood estimators: error against the exact value vs latent dimension, and run time.

1. Linear-Gaussian VAE (exact log p(x) in closed form), d in {2, 8, 32, 128}, data dim D = 2d + 32,
   sigma = 0.5, encoder off the posterior (mean shifted 0.5 sd per coordinate, variances x1.5),
   images simulated from the model. Every estimator at its default settings, plus AIS from the prior.
2. Run time per image at default settings on the study's ConvVAE(1, 64), latent 128 (untrained:
   the cost does not depend on the weights).

    .venv/bin/python benchmarks/likelihood_bench.py [--images 4] [--conv-images 2] [--no-write]

Prints markdown tables and appends them to benchmarks/RESULTS.md under "## Log-likelihood estimators".
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genlab.eval.ais import ais, bdmc, simulate
from genlab.eval.appendix_d import appendix_d
from genlab.eval.importance import importance_sampling
from genlab.io import atomic_write_text
from genlab.models.linear_gaussian import LinearGaussianVAE
from genlab.models.vae import ConvVAE

SECTION = "## Log-likelihood estimators"
DIMS = (2, 8, 32, 128)
ESTIMATORS = {
    "IS (K=5000)": lambda m, x: importance_sampling(m, x, 5000),
    "Appendix D (L=1000)": lambda m, x: appendix_d(m, x),
    "AIS, encoder init": lambda m, x: ais(m, x),
    "AIS, prior init": lambda m, x: ais(m, x, init="prior"),
}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def linear_sweep(n_images: int) -> str:
    lines = ["| d | D | estimator | mean error (nats) | max abs error | mean reported se | HMC accept | wall s/image | CPU s/image |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in DIMS:
        D = 2 * d + 32
        model = LinearGaussianVAE(D, d, sigma=0.5, seed=1)
        x, z = simulate(model, n_images, seed=3)
        exact = model.exact_log_marginal(x).numpy()
        elbo_gap = None
        for name, fn in ESTIMATORS.items():
            est, wall, cpu = timed(lambda: fn(model, x))
            err = est.log_px - exact
            if "elbo" in est.extras:
                elbo_gap = float(np.mean(exact - est.extras["elbo"]))
            acc = "" if est.acceptance is None else f"{np.mean(est.acceptance):.2f}"
            lines.append(f"| {d} | {D} | {name} | {err.mean():+.2f} | {np.abs(err).max():.2f} | {est.se.mean():.2f} | "
                         f"{acc} | {wall / n_images:.2f} | {cpu / n_images:.2f} |")
            print(lines[-1], flush=True)
        res, wall, cpu = timed(lambda: bdmc(model, x, z))
        lines.append(f"| {d} | {D} | BDMC upper (reverse AIS, encoder init) | {(res.upper.log_px - exact).mean():+.2f} | "
                     f"{np.abs(res.upper.log_px - exact).max():.2f} | {res.upper.se.mean():.2f} | | "
                     f"{wall / n_images:.2f} (both ways) | {cpu / n_images:.2f} |")
        lines.append(f"| {d} | {D} | ELBO (exact - ELBO = {elbo_gap:.2f} nats) | | | | | | |")
        print(*lines[-2:], sep="\n", flush=True)
    return "\n".join(lines)


def conv_timing(n_images: int) -> str:
    torch.manual_seed(0)
    model = ConvVAE(1, 64, latent_dim=128)
    images = (torch.rand(n_images, 1, 64, 64) > 0.8).float()  # dSprites-like binary images
    lines = ["| estimator (defaults) | model evaluations per image | wall s/image | CPU s/image | log p(x) of image 0 (nats) |",
             "|---|---|---|---|---|"]
    runs = {
        "IS, K=5000": (lambda: importance_sampling(model, images, 5000), "5000 decoder passes"),
        "Appendix D, L=1000, 20 chains, burn-in 50, 2 leapfrog": (lambda: appendix_d(model, images),
                                                                "6000 decoder gradients"),
        "AIS, 16 chains x 200 temperatures, 2 leapfrog, encoder init": (lambda: ais(model, images),
                                                                       "6400 decoder gradients"),
    }
    for name, (fn, evals) in runs.items():
        est, wall, cpu = timed(fn)
        lines.append(f"| {name} | {evals} | {wall / n_images:.1f} | {cpu / n_images:.1f} | {est.log_px[0]:.1f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def append_section(text: str, path: Path) -> None:
    """Replace our own section (if any) and keep everyone else's; create the file if absent."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    head, sep, rest = old.partition(SECTION)
    if sep:  # drop our previous section, up to the next "## " heading
        nxt = rest.find("\n## ")
        rest = rest[nxt + 1:] if nxt >= 0 else ""
        old = head.rstrip() + "\n\n" + rest
    atomic_write_text(path, old.rstrip() + "\n\n" + text.rstrip() + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4, help="simulated images per latent dimension")
    p.add_argument("--conv-images", type=int, default=2, help="images for the ConvVAE timing")
    p.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(2)
    command = "OMP_NUM_THREADS=2 .venv/bin/python benchmarks/likelihood_bench.py " + " ".join(sys.argv[1:])
    print(command)
    sweep = linear_sweep(args.images)
    conv = conv_timing(args.conv_images)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = (f"{SECTION}\n\nCommand: `{command.strip()}`  \n"
            f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"2 threads, load average {load:.1f} at the end (the CPU is shared: wall times are inflated "
            f"when the load exceeds 2; CPU time is the steadier number).\n\n"
            f"### Error vs latent dimension (linear-Gaussian VAE, {args.images} simulated images per d, "
            f"defaults)\n\nError = estimate - exact log p(x), in nats.\n\n{sweep}\n\n"
            f"### Run time per image at defaults, ConvVAE(1, 64), latent 128, CPU ({args.conv_images} images, "
            f"batched)\n\n{conv}\n")
    print(text)
    if not args.no_write:
        append_section(text, Path(__file__).resolve().parent / "RESULTS.md")


if __name__ == "__main__":
    main()
