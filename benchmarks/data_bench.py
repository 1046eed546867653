"""Images/s delivered by genlab's image loaders on the real samples in ../shared/data, with and
without the memory-mapped cache, against torchvision's ImageFolder with the equivalent
transforms measured in the same run; and, for scale, what training the study's VAE consumes.

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


def rate(loader: DataLoader, limit: int | None = None) -> tuple[float, int]:
    """Images per second over one pass (stopping after `limit` images)."""
    n, start = 0, time.perf_counter()
    for x, _ in loader:
        n += x.shape[0]
        if limit is not None and n >= limit:
            break
    return n / (time.perf_counter() - start), n


def loader(ds, workers: int, batch: int = 128) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers, persistent_workers=False)


def training_rate(size: int, batches: int = 3, batch: int = 32) -> float:
    """Images/s of the study's VAE training step (forward, backward, Adam) on CPU at this size."""
    from genlab.models.vae import ConvVAE

    model = ConvVAE(in_channels=3, image_size=size, latent_dim=128, sigma=0.1)
    opt = torch.optim.Adam(model.parameters())
    x = torch.rand(batch, 3, size, size)
    model.elbo(x)["loss"].mean().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        opt.zero_grad()
        model.elbo(x)["loss"].mean().backward()
        opt.step()
    return batches * batch / (time.perf_counter() - start)


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
            base_rate, _ = rate(loader(Subset(base, range(n)), args.workers), n)
            plain_rate, _ = rate(loader(Subset(ours, range(n)), args.workers), n)

            start = time.perf_counter()
            cached = image_dataset(name, root, "all", image_size=size, crop=crop, cache=True, progress=False,
                                   cache_root=tmp, num_workers=args.workers)
            build_rate = len(cached) / (time.perf_counter() - start)
            warm = [rate(loader(cached, args.workers))[0] for _ in range(args.cache_epochs)]
            warm_rate = sorted(warm)[len(warm) // 2]
            train_rate = training_rate(size)
            shape = "x".join(map(str, first.shape))
            rows += [
                (name, f"torchvision ImageFolder + same transforms ({shape})", n, base_rate, 1.0),
                (name, "genlab loader, no cache (libjpeg reduced decode)", n, plain_rate, plain_rate / base_rate),
                (name, "genlab cache build (first epoch, all images)", len(cached), build_rate,
                 build_rate / base_rate),
                (name, f"genlab loader, cache warm (median of {args.cache_epochs} epochs)", len(cached), warm_rate,
                 warm_rate / base_rate),
                (name, f"for scale: VAE training step at {size}x{size} (CPU)", 96, train_rate,
                 train_rate / base_rate),
            ]
            print(f"{name}: done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n`{' '.join(['.venv/bin/python', *sys.argv])}` (torch threads 2, DataLoader workers {args.workers}, "
          f"batch 128)\n")
    print("| dataset | loader | images | images/s | x ImageFolder |")
    print("|---|---|---:|---:|---:|")
    for name, what, n, r, x in rows:
        print(f"| {name} | {what} | {n} | {r:,.0f} | {x:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
