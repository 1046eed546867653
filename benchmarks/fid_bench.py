"""FID pipeline benchmarks.

(a) the study's protocol end to end: `genlab fid` vs `python -m pytorch_fid` (fresh processes) on
    the same two folders of Bitmoji faces written as 64x64 PNGs, with one seeded random Inception
    weights file for both (the real weights are not available offline): values and wall/CPU time,
    genlab cold and with the real folder's statistics cached. `--tune`: the forward pass's layout,
    batch size and thread count.
(b) sanity of the fallback extractor (the FID paper's check): FD against real images must grow
    monotonically with Gaussian blur, Gaussian noise and random erasing.

    .venv/bin/python benchmarks/fid_bench.py [--n 1000] [--rounds 1] [--sanity-n 500] [--dims 2048] [--skip-speed] [--skip-sanity]
    .venv/bin/python benchmarks/fid_bench.py --tune

Prints markdown tables. Skips (exit 0) when /work/shared/data/bitmoji is absent.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from genlab.eval import features as F
from genlab.eval.fid import Stats, frechet_distance

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


def _run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one command."""
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = os.times()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return time.perf_counter() - t0, cpu, proc.stdout


def _last_fid(stdout: str) -> float:
    return float(stdout.strip().splitlines()[-1].split()[-1])  # both tools end with `FID:  <value>`


def bench_speed(n: int, tmp: Path, dims: int = 2048, rounds: int = 1) -> None:
    """The study's protocol end to end: `genlab fid` vs `python -m pytorch_fid` on the same two
    folders of n Bitmoji 64x64 PNGs and the same (seeded random) weights file, each a fresh
    process. genlab cold (empty statistics cache), then with the real folder's statistics cached
    (what every epoch of a GAN run and a second `genlab fid` on the same real folder get)."""
    files = _bitmoji_files()
    if len(files) < 2 * n:
        raise SystemExit(f"need {2 * n} Bitmoji images, found {len(files)}")
    real = write_png_folder(files[:n], tmp / "real")
    fake = write_png_folder(files[n:2 * n], tmp / "fake")
    # One weights file for both tools. pytorch-fid only loads through torch hub's
    # load_state_dict_from_url, which takes a file already in $TORCH_HOME/hub/checkpoints/ as it is.
    hub = tmp / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    weights = hub / F.FID_WEIGHTS_FILE
    torch.save(F.he_state_dict(seed=1234), weights)
    base = dict(os.environ, TORCH_HOME=str(tmp / "torch_home"), CUDA_VISIBLE_DEVICES="")
    genlab = [str(Path(sys.executable).with_name("genlab")), "fid", str(real), str(fake), "--weights", str(weights),
              "--dims", str(dims), "--batch-size", "50"]
    pfid = [sys.executable, "-m", "pytorch_fid", str(real), str(fake), "--device", "cpu", "--batch-size", "50",
            "--dims", str(dims)]
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for r in range(rounds):
        cold_cache = tmp / f"cache-cold-{r}"
        t_cold = _run(genlab, dict(base, GENLAB_CACHE=str(cold_cache)))
        rows.setdefault("genlab fid, cold (empty statistics cache)", []).append((t_cold[0], t_cold[1], _last_fid(t_cold[2])))
        print(f"round {r}: genlab cold: wall {t_cold[0]:.1f} s, CPU {t_cold[1]:.1f} s, FID {_last_fid(t_cold[2])!r}",
              file=sys.stderr, flush=True)
        t_ref = _run(pfid, base)
        rows.setdefault("python -m pytorch_fid (default workers)", []).append((t_ref[0], t_ref[1], _last_fid(t_ref[2])))
        print(f"round {r}: pytorch_fid: wall {t_ref[0]:.1f} s, CPU {t_ref[1]:.1f} s, FID {_last_fid(t_ref[2])!r}",
              file=sys.stderr, flush=True)
        # Only the real folder's statistics kept from the cold run: the fake side is computed again.
        warm_cache = tmp / f"cache-warm-{r}" / "fid"
        warm_cache.mkdir(parents=True)
        kept = [f for f in (cold_cache / "fid").glob("folder_real_*.npz")]
        assert len(kept) == 1, kept
        shutil.copy(kept[0], warm_cache / kept[0].name)
        t_warm = _run(genlab, dict(base, GENLAB_CACHE=str(warm_cache.parent)))
        rows.setdefault("genlab fid, real statistics cached", []).append((t_warm[0], t_warm[1], _last_fid(t_warm[2])))
        print(f"round {r}: genlab cached: wall {t_warm[0]:.1f} s, CPU {t_warm[1]:.1f} s, FID {_last_fid(t_warm[2])!r}",
              file=sys.stderr, flush=True)

    ref_key = "python -m pytorch_fid (default workers)"
    ref_wall = min(w for w, _, _ in rows[ref_key])
    ref_cpu = min(c for _, c, _ in rows[ref_key])
    ref_value = rows[ref_key][0][2]
    print(f"\n### (a) end to end, {n} vs {n} Bitmoji 64x64 PNGs, {dims}-d, batch 50, CPU, one weights file "
          f"(seeded random), best of {rounds}\n")
    print("| pipeline | wall (s) | CPU (s) | FID | rel. diff vs pytorch-fid | speed-up (wall) | speed-up (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, vals in rows.items():
        wall, cpu, value = min(w for w, _, _ in vals), min(c for _, c, _ in vals), vals[0][2]
        print(f"| {key} | {wall:.1f} | {cpu:.1f} | {value:.6f} | {abs(value - ref_value) / abs(ref_value):.1e} | "
              f"{ref_wall / wall:.2f}x | {ref_cpu / cpu:.2f}x |")


def bench_tune(images: int = 64, rounds: int = 2) -> None:
    """Images per CPU-second of the 2048-d Inception forward: pytorch-fid's own (NCHW, BatchNorm
    separate, no_grad) against genlab's (BatchNorm folded, inference mode) in NCHW and channels_last,
    batch sizes and 1 vs 2 threads, interleaved so the shared machine's load hits every setting alike."""
    import pytorch_fid.inception as pfid

    state = F.he_state_dict(seed=0)
    net_w = Path(tempfile.mkdtemp(prefix="fid_tune_")) / F.FID_WEIGHTS_FILE
    torch.save(state, net_w)
    original = pfid.load_state_dict_from_url
    pfid.load_state_dict_from_url = lambda *a, **k: state
    try:
        plain = pfid.InceptionV3([3]).eval()
    finally:
        pfid.load_state_dict_from_url = original

    def pytorch_fid_forward(batch: torch.Tensor) -> None:
        with torch.no_grad():
            plain(batch)

    runners = {"pytorch-fid (NCHW, no_grad)": pytorch_fid_forward,
               "genlab NCHW": F.inception_extractor(net_w, 2048, "cpu", channels_last=False),
               "genlab channels_last": F.inception_extractor(net_w, 2048, "cpu", channels_last=True)}
    x = torch.rand(images, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    settings = [(name, bs, th) for th in (2, 1) for name in runners for bs in (16, 32, 64) if bs <= images]
    res: dict = {}
    for r in range(rounds + 1):  # round 0 warms oneDNN's kernels up and is not counted
        for name, bs, th in settings:
            torch.set_num_threads(th)
            t0, c0 = time.perf_counter(), time.process_time()
            runners[name](x[:bs])
            if r:
                res.setdefault((name, bs, th), []).append((bs / (time.perf_counter() - t0),
                                                           bs / (time.process_time() - c0)))
        print(f"tune round {r} done", file=sys.stderr, flush=True)
    torch.set_num_threads(THREADS)
    print("\n### Inception forward tuning (2048-d, 64x64 inputs resized to 299), best of "
          f"{rounds} interleaved rounds\n")
    print("| forward | batch | threads | images/s (wall) | images per CPU-s |")
    print("|---|---:|---:|---:|---:|")
    for (name, bs, th), v in res.items():
        print(f"| {name} | {bs} | {th} | {max(a for a, _ in v):.2f} | {max(b for _, b in v):.2f} |")


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
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the end-to-end comparison")
    parser.add_argument("--tune", action="store_true", help="only the forward-pass tuning table")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-sanity", action="store_true")
    args = parser.parse_args()
    if not BITMOJI.is_dir():
        print(f"skipped: {BITMOJI} not found")
        return
    torch.set_num_threads(THREADS)
    if args.tune:
        bench_tune()
        return
    with tempfile.TemporaryDirectory(prefix="fid_bench_") as tmp:
        if not args.skip_speed:
            bench_speed(args.n, Path(tmp), args.dims, args.rounds)
        if not args.skip_sanity:
            bench_sanity(args.sanity_n, args.dims)


if __name__ == "__main__":
    main()
