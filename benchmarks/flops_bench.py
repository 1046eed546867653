"""Achieved FLOP/s of genlab's heavy loops against this machine's own sgemm rate (issue 15).

For each workload: FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (2 per
multiply-add, every matmul/convolution of forward and backward), divided by its measured time,
against the float32 matmul rate of 2048x2048 @ 2048x2048 (2 * 2048^3 FLOP) measured in the same
run, between the workloads (the shared machine's load hits both alike; the best of each is used).

- FID features: the 2048-d Inception forward of genlab's extractor (BatchNorm folded,
  channels_last, inference mode) on 64x64 images resized to 299, batch 50.
- one VAE training step: the study's ConvVAE on CelebA 3x128x128 (channels 32..512, latent 128),
  forward + backward + Adam, batch 64.
- one DCGAN training step: the study's DCGAN at 64x64 (widths 64, latent 100), D then G step with
  Adam, batch 128.

    .venv/bin/python benchmarks/flops_bench.py [--rounds 2] [--threads 2]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.eval import features as F
from genlab.models.dcgan import DCGAN, discriminator_loss, generator_loss
from genlab.models.vae import ConvVAE

N = 2048


def sgemm() -> Callable[[], None]:
    a = torch.randn(N, N, generator=torch.Generator().manual_seed(0))
    b = torch.randn(N, N, generator=torch.Generator().manual_seed(1))
    return lambda: torch.mm(a, b)


def fid_features(batch: int) -> tuple[Callable[[], None], int]:
    weights = Path(tempfile.mkdtemp(prefix="flops_")) / F.FID_WEIGHTS_FILE
    torch.save(F.he_state_dict(seed=0), weights)
    ex = F.inception_extractor(weights, 2048, "cpu")
    x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return lambda: ex(x), batch


def vae_step(batch: int) -> tuple[Callable[[], None], int]:
    torch.manual_seed(0)
    model = ConvVAE(3, 128, 128)
    opt = torch.optim.Adam(model.parameters())
    x = torch.rand(batch, 3, 128, 128, generator=torch.Generator().manual_seed(0))

    def step() -> None:
        loss = model.elbo(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, batch


def dcgan_step(batch: int) -> tuple[Callable[[], None], int]:
    torch.manual_seed(0)
    net = DCGAN(100, 3, 64, 64, 64)
    G, D = net.generator, net.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z = torch.randn(batch, 100, generator=torch.Generator().manual_seed(1))

    def step() -> None:
        fake = G(z)
        d_loss = discriminator_loss(D(x), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        g_loss = generator_loss(D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return step, batch


def count_flops(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn: Callable[[], None], reps: int) -> float:
    """Best seconds per call over `reps` calls."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best of them is used)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fid-batch", type=int, default=50)
    parser.add_argument("--vae-batch", type=int, default=64)
    parser.add_argument("--dcgan-batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mm = sgemm()
    mm_flops = 2 * N ** 3
    workloads = {
        f"FID features (Inception 2048-d, batch {args.fid_batch})": fid_features(args.fid_batch),
        f"VAE training step (ConvVAE 3x128x128, batch {args.vae_batch})": vae_step(args.vae_batch),
        f"DCGAN training step (64x64, widths 64, batch {args.dcgan_batch})": dcgan_step(args.dcgan_batch),
    }
    flops = {name: count_flops(fn) for name, (fn, _) in workloads.items()}  # also the warm-up call
    for fn, _ in workloads.values():
        fn()
    mm()
    best = {name: float("inf") for name in workloads}
    best_mm = float("inf")
    for r in range(args.rounds):
        for name, (fn, _) in workloads.items():
            best_mm = min(best_mm, timed(mm, 3))
            best[name] = min(best[name], timed(fn, 1))
            print(f"round {r}: {name} {best[name]:.2f} s", file=sys.stderr, flush=True)
        best_mm = min(best_mm, timed(mm, 3))
    peak = mm_flops / best_mm
    print(f"\n### Achieved FLOP/s vs sgemm ({args.threads} threads, best of {args.rounds} interleaved rounds)\n")
    print(f"sgemm {N}x{N}x{N} float32: {best_mm * 1e3:.1f} ms = **{peak / 1e9:.1f} GFLOP/s** (2 FLOP per multiply-add)\n")
    print("| workload | GFLOP per call (counted) | s per call | items/s | GFLOP/s | share of sgemm |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (_, items) in workloads.items():
        rate = flops[name] / best[name]
        print(f"| {name} | {flops[name] / 1e9:.1f} | {best[name]:.2f} | {items / best[name]:.2f} | "
              f"{rate / 1e9:.1f} | {100 * rate / peak:.0f}% |")
    fid_name = next(iter(workloads))
    per_image = flops[fid_name] / args.fid_batch
    print(f"\nInception forward counted at {per_image / 1e9:.2f} GFLOP per image (= {per_image / 2e9:.2f} G "
          "multiply-adds; the '5.7 GFLOP' usually quoted for Inception-v3 counts multiply-adds at 299x299).")


if __name__ == "__main__":
    main()
