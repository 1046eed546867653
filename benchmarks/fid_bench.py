"""FID pipeline benchmarks.

(a) speed: genlab's `fid_between` vs `python -m pytorch_fid` (a subprocess) on the same two PNG
    folders of Bitmoji faces at 64x64, with the same injected random Inception weights (the real
    weights are not available offline); also checks the two values agree.
(b) sanity of the fallback extractor (the FID paper's check): FD against real images must grow
    monotonically with Gaussian blur, Gaussian noise and random erasing.

    .venv/bin/python benchmarks/fid_bench.py [--n 1000] [--sanity-n 500] [--dims 2048] [--skip-speed] [--skip-sanity]

Prints markdown tables. Skips (exit 0) when /work/shared/data/bitmoji is absent.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from genlab.eval import features as F
from genlab.eval.fid import Stats, fid_between, frechet_distance

BITMOJI = Path(os.environ.get("GENLAB_BITMOJI", "/work/shared/data/bitmoji/images"))
THREADS = 2


def _bitmoji_files() -> list[Path]:
    return sorted(p for p in BITMOJI.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def write_png_folder(files: list[Path], folder: Path, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        with Image.open(f) as img:
            img.convert("RGB").resize((size, size), Image.BICUBIC).save(folder / f"{f.stem}.png")
    return folder


def load_tensors(files: list[Path], size: int = 64) -> torch.Tensor:
    out = []
    for f in files:
        with Image.open(f) as img:
            out.append(TF.to_tensor(img.convert("RGB").resize((size, size), Image.BICUBIC)))
    return torch.stack(out)


def bench_speed(n: int, tmp: Path, dims: int = 2048) -> None:
    files = _bitmoji_files()
    if len(files) < 2 * n:
        raise SystemExit(f"need {2 * n} Bitmoji images, found {len(files)}")
    a = write_png_folder(files[:n], tmp / "a")
    b = write_png_folder(files[n:2 * n], tmp / "b")
    # Same random weights for both: a file for genlab, the torch hub cache file for pytorch-fid.
    hub = tmp / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    weights = hub / F.FID_WEIGHTS_FILE
    torch.save(F.he_state_dict(seed=1234), weights)

    t0 = time.perf_counter()
    ours = fid_between(a, b, weights=weights, dims=dims, batch_size=50, device="cpu")
    t_ours = time.perf_counter() - t0

    env = dict(os.environ, TORCH_HOME=str(tmp / "torch_home"), OMP_NUM_THREADS=str(THREADS),
               CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu", "--batch-size", "50", "--dims", str(dims)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    t_ref = time.perf_counter() - t0
    ref = float(proc.stdout.strip().splitlines()[-1].split()[-1])

    print(f"\n### (a) speed, {n} vs {n} Bitmoji 64x64 PNGs, {dims}-d, batch 50, CPU ({THREADS} threads), random weights\n")
    print("| pipeline | wall time (s) | images/s | FID |")
    print("|---|---|---|---|")
    print(f"| genlab `fid_between` (in process, incl. KID) | {t_ours:.1f} | {2 * n / t_ours:.1f} | {ours.value:.6f} |")
    print(f"| `python -m pytorch_fid` (subprocess, default workers) | {t_ref:.1f} | {2 * n / t_ref:.1f} | {ref:.6f} |")
    print(f"\nratio genlab / pytorch-fid wall time: {t_ours / t_ref:.2f}; "
          f"relative FID difference: {abs(ours.value - ref) / abs(ref):.2e}")


def _blur(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    if sigma == 0:
        return x
    k = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def _noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    return (x + std * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _erase(x: torch.Tensor, frac: float, gen: torch.Generator) -> torch.Tensor:
    # One square per image covering `frac` of its area, filled with uniform noise (RandomErasing's 'random').
    if frac == 0:
        return x
    x = x.clone()
    n, c, h, w = x.shape
    side = int(round(math.sqrt(frac) * h))
    for i in range(n):
        top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        x[i, :, top:top + side, left:left + side] = torch.rand((c, side, side), generator=gen)
    return x


PERTURBATIONS = {
    "Gaussian blur (sigma px)": (_blur, [0, 0.5, 1, 2, 4]),
    "Gaussian noise (std)": (_noise, [0, 0.05, 0.1, 0.2, 0.4]),
    "random erasing (area fraction)": (_erase, [0, 0.05, 0.15, 0.3, 0.5]),
}


def bench_sanity(n: int, dims: int = 2048) -> None:
    files = _bitmoji_files()
    if len(files) < 2 * n:
        raise SystemExit(f"need {2 * n} Bitmoji images, found {len(files)}")
    ref_imgs, other = load_tensors(files[:n]), load_tensors(files[n:2 * n])
    t0 = time.perf_counter()
    ex = F.fallback_extractor(ref_imgs, seed=0, dims=dims, device="cpu")
    ref = Stats.from_features(F.features_from_tensors(ex, ref_imgs), ex)
    clean = Stats.from_features(F.features_from_tensors(ex, other), ex)
    base = frechet_distance(ref.mu, ref.sigma, clean.mu, clean.sigma)

    print(f"\n### (b) fallback extractor sanity, {n} real vs {n} other real Bitmoji 64x64 (perturbed), {dims}-d\n")
    print(f"extractor: {ex.label}\n")
    print("| perturbation | strengths | FD (strength 0 = clean) | monotonic |")
    print("|---|---|---|---|")
    all_ok = True
    for name, (fn, strengths) in PERTURBATIONS.items():
        gen = torch.Generator().manual_seed(0)
        values = [base]
        for s in strengths[1:]:
            st = Stats.from_features(F.features_from_tensors(ex, fn(other, s, gen)), ex)
            values.append(frechet_distance(ref.mu, ref.sigma, st.mu, st.sigma))
        ok = all(b > a for a, b in zip(values, values[1:]))
        all_ok &= ok
        print(f"| {name} | {', '.join(map(str, strengths))} | {', '.join(f'{v:.4g}' for v in values)} | "
              f"{'yes' if ok else 'NO'} |")
    print(f"\nall monotonic: {'yes' if all_ok else 'NO'}; time {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="images per side for the speed benchmark")
    parser.add_argument("--sanity-n", type=int, default=500, help="images per side for the sanity check")
    parser.add_argument("--dims", type=int, default=2048, choices=list(F.DIMS))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-sanity", action="store_true")
    args = parser.parse_args()
    if not BITMOJI.is_dir():
        print(f"skipped: {BITMOJI} not found")
        return
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="fid_bench_") as tmp:
        if not args.skip_speed:
            bench_speed(args.n, Path(tmp), args.dims)
        if not args.skip_sanity:
            bench_sanity(args.sanity_n, args.dims)


if __name__ == "__main__":
    main()
