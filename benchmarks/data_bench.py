"""Images/s delivered by genlab's image loaders on the real samples in ../shared/data, with and
without the memory-mapped cache, against torchvision's ImageFolder with the equivalent
transforms measured in the same run; and, for scale, what training the study's VAE consumes.

Two rates per row: images per wall-clock second, and images per CPU-second of this process
(`time.process_time`, all its threads). On a machine shared with other jobs the wall rate
swings with their load; the CPU rate measures the work itself, so the ratios use it (with
--workers 0 all decoding happens in this process, so nothing escapes the count).

    .venv/bin/python benchmarks/data_bench.py [--data ../shared/data] [--n 1024] [--workers 0]

Prints a markdown table. Skips (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder

from genlab.data.images import image_dataset
from genlab.data.transforms import reference_transform

# name, folder under --data, ImageFolder root under --data, image size, crop (fraction of the shorter side)
DATASETS = [
    ("bitmoji", "bitmoji", "bitmoji", 64, 1.0),
    ("celeba", "celeba", "celeba", 128, 148 / 178),
    ("tinyimagenet", "tinyimagenet", "tinyimagenet/tiny-imagenet-200/train", 64, 1.0),
]


def rate(loader: DataLoader, limit: int | None = None) -> tuple[float, float]:
    """(images per wall second, images per CPU second) over one pass, stopping after `limit`."""
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    for x, _ in loader:
        n += x.shape[0]
        if limit is not None and n >= limit:
            break
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def loader(ds, workers: int, batch: int = 128) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers, persistent_workers=False)


def training_rate(size: int, batches: int = 3, batch: int = 32) -> tuple[float, float]:
    """Images/s of the study's VAE training step (forward, backward, Adam) on CPU at this size."""
    from genlab.models.vae import ConvVAE

    model = ConvVAE(in_channels=3, image_size=size, latent_dim=128, sigma=0.1)
    opt = torch.optim.Adam(model.parameters())
    x = torch.rand(batch, 3, size, size)
    model.elbo(x)["loss"].mean().backward()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        opt.zero_grad()
        model.elbo(x)["loss"].mean().backward()
        opt.step()
    return batches * batch / (time.perf_counter() - wall), batches * batch / (time.process_time() - cpu)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--n", type=int, default=1024, help="images decoded per uncached measurement")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for every loader")
    p.add_argument("--cache-epochs", type=int, default=3, help="warm passes over the cached dataset")
    p.add_argument("--only", nargs="*", default=None, help="subset of: bitmoji celeba tinyimagenet")
    args = p.parse_args()
    torch.set_num_threads(2)
    data = Path(args.data)
    if not data.is_dir():
        print(f"skipped: {data} not found (the real-data samples live in ../shared/data)")
        return 0

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="genlab-data-bench-"))
    try:
        for name, folder, imagefolder_root, size, crop in DATASETS:
            if args.only and name not in args.only:
                continue
            root = data / folder
            if not root.is_dir():
                print(f"skipped {name}: {root} not found", file=sys.stderr)
                continue
            ours = image_dataset(name, root, "all", image_size=size, crop=crop)
            first = ours.transform.load(ours.files[0])  # find the originals' size for the baseline crop
            from PIL import Image

            with Image.open(ours.files[0]) as im:
                crop_px = ours.transform.crop_side(*im.size)
            base = ImageFolder(str(data / imagefolder_root), transform=reference_transform(size, crop_px))
            n = min(args.n, len(ours))
            base_rate = rate(loader(Subset(base, range(n)), args.workers), n)
            plain_rate = rate(loader(Subset(ours, range(n)), args.workers), n)

            wall, cpu = time.perf_counter(), time.process_time()
            cached = image_dataset(name, root, "all", image_size=size, crop=crop, cache=True, progress=False,
                                   cache_root=tmp, num_workers=args.workers)
            build_rate = (len(cached) / (time.perf_counter() - wall), len(cached) / (time.process_time() - cpu))
            warm = sorted(rate(loader(cached, args.workers)) for _ in range(args.cache_epochs))
            warm_rate = warm[len(warm) // 2]
            shape = "x".join(map(str, first.shape))
            rows += [
                (name, f"torchvision ImageFolder + same transforms ({shape})", n, base_rate, base_rate),
                (name, "genlab loader, no cache (libjpeg reduced decode)", n, plain_rate, base_rate),
                (name, "genlab cache build (first epoch, all images)", len(cached), build_rate, base_rate),
                (name, f"genlab loader, cache warm (median of {args.cache_epochs} epochs)", len(cached), warm_rate,
                 base_rate),
                (name, f"for scale: the VAE's training step at {size}x{size}, batch 32", 96, training_rate(size),
                 base_rate),
            ]
            print(f"{name}: done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n`{' '.join(['.venv/bin/python', *sys.argv])}` (torch threads 2, DataLoader workers {args.workers}, "
          f"batch 128)\n")
    cpu_ok = args.workers == 0  # worker processes' CPU time is not counted
    print("| dataset | loader | images | images/s (wall) | images/CPU-s | x ImageFolder (CPU) | x ImageFolder (wall) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, what, n, (w, c), (bw, bc) in rows:
        cpu_cells = f"{c:,.0f} | {c / bc:.2f}" if cpu_ok else "n/a | n/a"
        print(f"| {name} | {what} | {n} | {w:,.0f} | {cpu_cells} | {w / bw:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
