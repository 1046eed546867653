"""Speed and fidelity of genlab's dSprites renderer.

Speed: wall time to render all 737,280 images (bit-packed, as `generate_all` stores them).
Fidelity: the renderer against the 20,000 real images in ../shared/data/dsprites (skipped when
that folder is absent): mean IoU of the sprite pixels per shape and overall, and the rate of
pixel-exact images.

    .venv/bin/python benchmarks/dsprites_render.py [--skip-speed] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from genlab.data import dsprites as ds

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsprites" / "dsprites_subset.npz"


def fidelity(path: Path) -> dict[str, tuple[int, float, float]]:
    z = np.load(path, allow_pickle=False)  # only plain arrays are read: no code runs from the file
    real = z["imgs"].astype(bool)
    # The subset drops the constant colour column; put it back.
    classes = np.concatenate([np.zeros((len(real), 1), np.int64), z["latents_classes"]], axis=1)
    fake = ds.render(classes).astype(bool)
    iou = (fake & real).sum((1, 2)) / np.maximum((fake | real).sum((1, 2)), 1)
    exact = (fake == real).all((1, 2))
    rows = {}
    for k, name in enumerate(ds.SHAPE_NAMES):
        m = classes[:, 1] == k
        rows[name] = (int(m.sum()), float(iou[m].mean()), float(exact[m].mean()))
    rows["all"] = (len(real), float(iou.mean()), float(exact.mean()))
    return rows


def speed() -> tuple[float, float]:
    """Wall and process CPU seconds (all threads) to render the whole set, bit-packed."""
    classes = ds.index_to_classes(np.arange(ds.N_IMAGES))
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, ds.N_IMAGES, 16384):
        ds.render_packed(classes[i:i + 16384])
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}, renderer v{ds.RENDERER_VERSION}\n")
    if not args.skip_speed:
        wall, cpu = speed()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print("| what | value |\n|---|---|")
        print(f"| render all {ds.N_IMAGES:,} images (packed), wall | {wall:.1f} s "
              f"({ds.N_IMAGES / wall:,.0f} img/s; load average {load:.1f}) |")
        print(f"| same, CPU time over all threads | {cpu:.1f} s |\n")
    if not args.data.exists():
        print(f"fidelity skipped: {args.data} not found (real dSprites samples absent)")
        return
    print("| shape | real images | mean IoU | pixel-exact |\n|---|---|---|---|")
    for name, (n, iou, exact) in fidelity(args.data).items():
        print(f"| {name} | {n:,} | {iou:.4f} | {exact:.1%} |")


if __name__ == "__main__":
    main()
