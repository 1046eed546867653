"""An independent check of genlab's MIG (issue 23): the Mutual Information Gap computed a second
way, from the definition of Chen et al. 2018 (Sec. 4.1), with numpy counts only (no scikit-learn,
no code shared with genlab.eval.disentanglement), on real dSprites images.

    MIG = 1/K sum_k ( I(z_a; v_k) - I(z_b; v_k) ) / H(v_k),

a and b the latents of largest and second-largest mutual information with factor v_k. As in
disentanglement_lib (and genlab), z is the mean of q(z|x) cut into `bins` equal-width bins over its
observed range; I(z; v) = H(z) + H(v) - H(z, v) from the joint count table, entropies in nats.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/mig_independent.py RUN [RUN ...] \
        [--data /work/shared/data/dsprites/dsprites_subset.npz] [--n N] [--bins 20] [--out FILE.json]

For each run: encodes the npz's real images, prints this MIG, genlab's MIG on the same codes (a check
of the two implementations) and the MIG in RUN/eval/disentanglement.json (`genlab disentangle`, on
rendered images with freshly drawn factors) and the difference (the issue asks for <= 0.05).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_DATA = "/work/shared/data/dsprites/dsprites_subset.npz"


def entropy(counts: np.ndarray) -> float:
    """Entropy in nats of the distribution given by non-negative counts (any shape)."""
    c = counts[counts > 0].astype(np.float64)
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def equal_width_bins(x: np.ndarray, bins: int) -> np.ndarray:
    """Bin numbers 0..bins-1 of equal-width bins spanning [min x, max x] (the maximum in the last)."""
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(len(x), dtype=np.int64)
    return np.clip(np.floor((x - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two non-negative integer label arrays, from their joint count table."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb)
    return entropy(joint.sum(1)) + entropy(joint.sum(0)) - entropy(joint)


def mig_independent(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> tuple[float, np.ndarray, np.ndarray]:
    """(MIG, per-factor normalised gaps, the (D, K) MI matrix) of codes (N, D) and integer factors (N, K)."""
    binned = [equal_width_bins(codes[:, i], bins) for i in range(codes.shape[1])]
    labels = [np.unique(factors[:, k], return_inverse=True)[1] for k in range(factors.shape[1])]
    mi = np.array([[mutual_information(z, v) for v in labels] for z in binned])
    gaps = []
    for k, v in enumerate(labels):
        h = entropy(np.bincount(v))
        if h == 0:  # a factor constant in these images: no information to gap, left out
            gaps.append(float("nan"))
            continue
        column = np.sort(mi[:, k])[::-1]
        second = column[1] if len(column) > 1 else 0.0
        gaps.append((column[0] - second) / h)
    return float(np.nanmean(gaps)), np.array(gaps), mi


def load_real(path: str, n: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=True, encoding="latin1") as z:
        imgs, classes = z["imgs"], z["latents_classes"]
    if classes.shape[1] == 6:  # the official layout: drop colour (one value)
        classes = classes[:, 1:]
    if n is not None and n < len(imgs):  # a seeded random n: the files are in index order (shape first)
        rows = np.sort(np.random.default_rng(seed).choice(len(imgs), n, replace=False))
        imgs, classes = imgs[rows], classes[rows]
    return imgs[:, None].astype(np.float32), classes.astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default=DEFAULT_DATA, help="npz with imgs and latents_classes (default: %(default)s)")
    ap.add_argument("--n", type=int, default=None, help="a seeded random N of the images (default: all)")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--out", default=None, help="also write the results here (JSON)")
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: {args.data}: not found; pass --data PATH to a dSprites npz", file=sys.stderr)
        return 2
    import torch

    from genlab.eval.disentanglement.evaluate import open_run_model, representation_of
    from genlab.eval.disentanglement.mig import mig as genlab_mig

    torch.set_num_threads(1)
    x, factors = load_real(args.data, args.n)
    rows = []
    for run_dir in args.runs:
        _, _, model = open_run_model(run_dir)
        codes = representation_of(model)(x)
        score, gaps, _ = mig_independent(codes, factors, args.bins)
        same_codes = genlab_mig(codes, factors, args.bins)["score"]
        saved = Path(run_dir) / "eval" / "disentanglement.json"
        cli = json.loads(saved.read_text())["mig"] if saved.is_file() else None
        row = {"run": str(run_dir), "images": len(x), "bins": args.bins, "mig_independent": score,
               "per_factor": gaps.tolist(), "mig_genlab_same_codes": same_codes, "mig_genlab_disentangle": cli,
               "difference": None if cli is None else score - cli}
        rows.append(row)
        diff = "–" if cli is None else f"{score - cli:+.4f}"
        print(f"{run_dir}: independent MIG {score:.4f} on {len(x)} real images | genlab on the same codes "
              f"{same_codes:.4f} | genlab disentangle {cli if cli is None else f'{cli:.4f}'} (difference {diff})")
    if args.out:
        from genlab.io import atomic_write_json

        atomic_write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
