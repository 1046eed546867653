"""Fréchet distance: the old `scipy.linalg.sqrtm` route vs genlab's eigenvalue route, same inputs.

2048-d statistics of N = 1000 feature-like samples (non-negative, correlated, decaying spectrum;
both covariances singular, rank N - 1), as in the study's per-epoch FID. One BLAS / torch thread.
Prints the times, their ratio measured in this run, and the agreement of both with the exact value
(the nuclear norm of A B^T, no matrix square root).

    .venv/bin/python benchmarks/fid_distance_bench.py [--n 1000] [--dims 2048] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import linalg  # noqa: E402

from genlab.eval.fid import frechet_distance  # noqa: E402


def sqrtm_route(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """genlab's previous implementation (= pytorch-fid's `calculate_frechet_distance`)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def exact(x, y):
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * np.linalg.svd(a @ b.T, compute_uv=False).sum())


def best_time(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many, per route")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    d = args.dims
    mix = rng.standard_normal((d, d)) * (np.arange(1, d + 1) ** -0.5)[:, None]
    x = np.maximum(rng.standard_normal((args.n, d)) @ mix, 0)
    y = np.maximum(1.1 * rng.standard_normal((args.n, d)) @ mix + 0.05, 0)
    stats = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))

    t_new, v_new = best_time(lambda: frechet_distance(*stats), args.repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_old, v_old = best_time(lambda: sqrtm_route(*stats), args.repeats)
    v_exact = exact(x, y)

    print(f"N = {args.n}, dims = {d}, 1 thread, best of {args.repeats}\n")
    print("| route | time (s) | FID | rel. diff vs exact |")
    print("|---|---:|---:|---:|")
    print(f"| scipy.linalg.sqrtm (old) | {t_old:.2f} | {v_old:.9f} | {abs(v_old - v_exact) / v_exact:.1e} |")
    print(f"| eigenvalue, float64 (new) | {t_new:.2f} | {v_new:.9f} | {abs(v_new - v_exact) / v_exact:.1e} |")
    print(f"| exact (nuclear norm of A B^T) | | {v_exact:.9f} | |")
    print(f"\nspeed-up old/new: {t_old / t_new:.1f}x; new vs old rel. diff {abs(v_new - v_old) / abs(v_old):.1e}")


if __name__ == "__main__":
    main()
