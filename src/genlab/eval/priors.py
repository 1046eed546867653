"""Compare the priors of a VQ-VAE run: per prior a 10x10 grid of decoded samples, the held-out
negative log-likelihood of code maps in bits per map (exact for the PixelCNN, an upper bound for
the VAE, none for the Gaussian mixture), and FD/KID of decoded samples against held-out images.

Reference rows put the numbers in context: "uniform codes" (every map equally likely: exactly
H*W*log2(K) bits), "code frequencies" (independent positions with the train split's code
frequencies, add-one smoothed), both without FD/KID (features are the expensive part), and
"reconstructions" (the held-out images' own code maps decoded:
the best FD/KID any prior can reach through this decoder).

The VAE gets a second row, "vae, mode per position": the same model decoded to its most likely
code at each position (its sampled maps, independent per position given z, look like noise).

Writes `<run>/eval/priors.json`, `<run>/eval/priors.md` and `<run>/samples/prior_<kind>.png`
(and `prior_vae_mode.png`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from genlab.data.registry import build_dataset
from genlab.defaults import PRIOR_EVAL
from genlab.errors import GenlabError
from genlab.eval.codes import load_code_maps
from genlab.io import atomic_write_json, atomic_write_text
from genlab.models.priors import PRIOR_KINDS, bits_per_map, sample_maps
from genlab.progress import progress
from genlab.runs import ARRAY_PRIOR_FILE, NEURAL_PRIOR_FILE, PICKLED_PRIOR_FILE, Run
from genlab.viz.grids import save_grid

# what a prior's `log_prob_kind` makes of its held-out bits, as the table says it
NLL_LABELS = {"exact": "exact", "bound": "upper bound (negative ELBO)", None: None}


def feature_evaluator(cfg, real: torch.Tensor, dataset_id: str):
    """FD/KID against `real` with the Inception weights when found, else the fallback features
    (calibrated on the same real images; NOT comparable to published FIDs)."""
    from genlab.eval.features import choose_extractor
    from genlab.eval.fid import FIDEvaluator

    fid = cfg.model.priors.fid
    kind = choose_extractor(fid.extractor, fid.weights, "model.priors.fid.extractor")
    return FIDEvaluator.for_dataset(real, dataset_id=dataset_id, n=len(real), weights=fid.weights, dims=fid.dims,
                                    fallback=kind == "fallback", seed=cfg.trainer.seed, batch_size=fid.batch_size,
                                    kid_subset_size=fid.kid_subset_size)


def fd_kid(evaluator, images: torch.Tensor) -> dict[str, Any]:
    r = evaluator(images)
    return {"fd": r.value, "kid": r.kid_mean, "kid_std": r.kid_std}


def _bits(values: torch.Tensor) -> dict[str, float]:
    v = values.double()
    return {"bits_per_map": float(v.mean()), "bits_se": float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0}


def _frequency_bits(train: torch.Tensor, val: torch.Tensor, k: int) -> torch.Tensor:
    counts = torch.bincount(train.flatten(), minlength=k).double() + 1
    logp = torch.log2(counts / counts.sum())
    return -logp[val.flatten(1)].sum(1)


@torch.no_grad()
def decode_maps(net, codes: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """Images in [0, 1] from (N, H, W) code maps, a batch at a time."""
    return torch.cat([net.decode_indices(codes[i:i + batch_size]) for i in range(0, len(codes), batch_size)])


def held_out_evaluator(cfg, run: Run, n: int):
    """(FD/KID evaluator against the first n held-out images, n), n capped at the split's size."""
    val_set = build_dataset(cfg.data, "val", cfg.trainer.seed)
    n = min(n, len(val_set))
    real = torch.stack([val_set[i][0] for i in range(n)])
    return feature_evaluator(cfg, real, f"{cfg.data.name}-val-{cfg.data.image_size}-{run.path.name}"), n


def evaluate_priors(run_dir: str | Path, kinds: list[str] | None = None, n_samples: int | None = None,
                    seed: int = PRIOR_EVAL["seed"], which: str = PRIOR_EVAL["which"], console=None) -> dict[str, Any]:
    """The comparison table for every trained prior (or `kinds`); see the module docstring."""
    run = Run.open(run_dir)
    cfg, net = run.config(), run.load_model(which)
    codes = load_code_maps(run.path)
    train_codes, val_codes = codes.of_split("train"), codes.of_split("val")
    if len(val_codes) == 0:
        raise GenlabError(f"{run.path}/codes/codes.npz has no held-out (val) maps; rewrite it with `genlab codes`")
    kinds = kinds or [k for k in PRIOR_KINDS
                      if any((run.prior_dir(k) / f).is_file() for f in (NEURAL_PRIOR_FILE, ARRAY_PRIOR_FILE, PICKLED_PRIOR_FILE))]
    if not kinds:
        raise GenlabError(f"{run.path}: no trained prior; train one with `genlab prior {run.path} --kind pixelcnn`")
    k, (h, w) = codes.num_codes, codes.grid

    evaluator, n = held_out_evaluator(cfg, run, n_samples or cfg.model.priors.eval_samples)
    gen = torch.Generator().manual_seed(seed)

    rows: list[dict[str, Any]] = []
    rows.append({"prior": "uniform codes", "nll": "exact", "bits_per_map": h * w * math.log2(k), "bits_se": 0.0,
                 "fd": None, "kid": None, "kid_std": None})
    rows.append({"prior": "code frequencies", "nll": "exact", **_bits(_frequency_bits(train_codes, val_codes, k)),
                 "fd": None, "kid": None, "kid_std": None})
    rows.append({"prior": "reconstructions", "nll": None, "bits_per_map": None, "bits_se": None,
                 **fd_kid(evaluator, decode_maps(net, val_codes[:n]))})
    for kind in kinds:
        prior = run.load_prior(kind)
        bits = bits_per_map(prior, val_codes, generator=torch.Generator().manual_seed(seed))
        likelihood = {"nll": NLL_LABELS[prior.log_prob_kind], **(_bits(bits) if bits is not None else
                                                 {"bits_per_map": None, "bits_se": None})}
        # the VAE's positions are independent given z: sampled they look like noise, so its mode
        # (the most likely code at each position, as a VAE's mean image) is shown beside them
        variants = [(kind, kind, 1.0)] + ([("vae, mode per position", "vae_mode", 0.0)] if kind == "vae" else [])
        for name, stem, temperature in variants:
            t0 = time.perf_counter()
            with progress(f"sampling {n} maps from the {name} prior", n) as advance:
                maps = sample_maps(prior, n, generator=gen, temperature=temperature, advance=advance)
            sample_s = time.perf_counter() - t0
            images = decode_maps(net, maps)
            save_grid(images[:100], run.samples / f"prior_{stem}.png", nrow=10)
            scores = likelihood if temperature else {"nll": None, "bits_per_map": None, "bits_se": None}
            row = {"prior": name, **scores, **fd_kid(evaluator, images), "sample_seconds": round(sample_s, 1),
                   "codes_used": int(torch.unique(maps).numel())}
            rows.append(row)
            if console is not None:
                console.print(f"{name}: {row}")
    result = {"run": str(run.path), "num_codes": k, "grid": [h, w], "n_fake": n, "n_real": n,
              "held_out_maps": len(val_codes), "features": evaluator.extractor.label,
              "features_comparable": evaluator.extractor.comparable, "rows": rows}
    atomic_write_json(run.eval / "priors.json", result)
    atomic_write_text(run.eval / "priors.md", format_table(result) + "\n")
    return result


def _num(v: Any, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a markdown table, with N and the feature extractor named."""
    lines = [f"Priors over {result['grid'][0]}x{result['grid'][1]} maps of K={result['num_codes']} codes; "
             f"NLL on {result['held_out_maps']} held-out maps; FD/KID of {result['n_fake']} decoded samples vs "
             f"{result['n_real']} held-out images, features: {result['features']}"
             + ("" if result["features_comparable"] else " (NOT comparable to published FIDs)") + ".",
             "",
             "| prior | bits per map (held-out) | NLL | FD | KID |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        bits = "n/a" if r["bits_per_map"] is None else f"{r['bits_per_map']:.1f} +- {r['bits_se']:.1f}"
        kid = "n/a" if r["kid"] is None else f"{r['kid']:.4f} +- {r['kid_std']:.4f}"
        lines.append(f"| {r['prior']} | {bits} | {r['nll'] or 'none'} | {_num(r['fd'], '.2f')} | {kid} |")
    return "\n".join(lines)
