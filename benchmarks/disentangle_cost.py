"""What the disentanglement metrics cost on this CPU, per metric and protocol (issue 23).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/disentangle_cost.py \
        [--run RUN] [--protocols dlib cpu] [--seeds 1] [--out FILE.json]

With --run, the representation is the run's mean of q(z|x) on rendered dSprites images (time spent
rendering + encoding is reported apart: each factor combination is encoded once and reused by every
metric); without, a synthetic 10-latent representation (a fixed random linear map of the five
dSprites factors plus noise-free tanh), so the time is the metrics' own. Seconds are wall-clock per
seed (the sum over seeds divided by the number of seeds). `--protocols test` is a seconds-long smoke run.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def synthetic_representation(n_latents: int = 10):
    w = np.random.default_rng(0).normal(size=(5, n_latents))

    def represent(x: np.ndarray) -> np.ndarray:
        return np.tanh((x / np.array([2, 5, 39, 31, 31])) @ w)

    return represent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a trained dSprites run (default: a synthetic representation)")
    ap.add_argument("--protocols", nargs="+", default=["cpu", "dlib"])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the table here (JSON)")
    args = ap.parse_args(argv)
    import torch

    from genlab.eval.disentanglement import DSpritesFactors, SyntheticFactors, evaluate_representation
    from genlab.eval.disentanglement.evaluate import open_run_model, representation_of

    torch.set_num_threads(1)
    if args.run:
        _, _, model = open_run_model(args.run)
        data = DSpritesFactors()
        inner = representation_of(model)
    else:
        data = SyntheticFactors((3, 6, 40, 32, 32), ("shape", "scale", "orientation", "posX", "posY"))
        inner = synthetic_representation()
    rows = []
    spent = {"encode": 0.0}

    def represent(x: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = inner(x)
        spent["encode"] += time.perf_counter() - t
        return out

    for name in args.protocols:
        spent["encode"] = 0.0
        t0 = time.perf_counter()
        result = evaluate_representation(represent, data, name, args.seeds)
        total = time.perf_counter() - t0
        per = result["details"]["seconds_per_metric"]
        row = {"protocol": name, "seeds": args.seeds, "data": data.description,
               "encoded_images": result["protocol"]["representation_calls"],
               "encode_s_per_seed": spent["encode"] / args.seeds,
               "metric_s_per_seed": {k: v / args.seeds for k, v in per.items()},
               "total_s_per_seed": total / args.seeds, "mig": result["mig"]}
        rows.append(row)
        cells = ", ".join(f"{k} {v:.1f}" for k, v in row["metric_s_per_seed"].items())
        print(f"{name}: {row['total_s_per_seed']:.1f} s per seed ({cells}; of which encoding "
              f"{row['encode_s_per_seed']:.1f} s for {row['encoded_images']} images)")
    if args.out:
        from genlab.io import atomic_write_json

        atomic_write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
