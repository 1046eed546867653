"""Every disentanglement metric of a representation over several evaluation seeds, and of a run.

`evaluate_representation(represent, data, protocol, seeds)`: `represent` maps observations (for
dSprites float images (N, 1, 64, 64) in [0, 1]) to codes (N, D); `data` a `GroundTruth`. Each seed
draws every metric's points afresh (numpy Generator seeded [seed, metric number]); the result
gives, per metric, the median over seeds at the top level and {median, min, max, values} under
`spread`, with the protocol, seeds and library versions.

`evaluate_run(run_dir, ...)`: the same for a trained dSprites run on the mean of q(z|x), written
to RUN/eval/disentanglement.json (atomically) with the figures under RUN/eval/disentanglement/.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from genlab.defaults import DISENTANGLE_FIGURES, DISENTANGLE_RESULT
from genlab.errors import GenlabError
from genlab.eval.disentanglement import beta_vae, dci, factor_vae, mig, modularity, sap
from genlab.eval.disentanglement.ground_truth import CodeCache, DSpritesFactors, GroundTruth, Represent
from genlab.eval.disentanglement.protocol import DEFAULT_PROTOCOL, DEFAULT_SEEDS, Protocol, get_protocol

RESULT_FILE, FIGURE_DIR = DISENTANGLE_RESULT, DISENTANGLE_FIGURES  # under RUN/eval/
# (metric, its module's compute, the protocol field with its settings) in evaluation order
METRICS: tuple[tuple[str, Callable[..., dict[str, Any]], str], ...] = (
    ("mig", mig.compute, "mig"),
    ("betavae_score", beta_vae.compute, "betavae"),
    ("factorvae_score", factor_vae.compute, "factorvae"),
    ("sap", sap.compute, "sap"),
    ("dci", dci.compute, "dci"),
    ("modularity_explicitness", modularity.compute, "modularity"),
)
# the headline values: result key -> (metric, key in its output)
HEADLINE = {
    "mig": ("mig", "score"), "factorvae_score": ("factorvae_score", "score"),
    "betavae_score": ("betavae_score", "score"), "sap": ("sap", "score"),
    "dci.disentanglement": ("dci", "disentanglement"), "dci.completeness": ("dci", "completeness"),
    "dci.informativeness": ("dci", "informativeness"),
    "modularity": ("modularity_explicitness", "modularity"),
    "explicitness": ("modularity_explicitness", "explicitness"),
}


def versions() -> dict[str, str]:
    import scipy
    import sklearn

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "scikit-learn": sklearn.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    from genlab import __version__

    out["genlab"] = __version__
    return out


def spread(values: Sequence[float]) -> dict[str, Any]:
    v = [float(x) for x in values]
    return {"median": float(np.median(v)), "min": min(v), "max": max(v), "values": v}


def evaluate_representation(represent: Represent, data: GroundTruth, protocol: str | Protocol = DEFAULT_PROTOCOL,
                            seeds: int | Sequence[int] | None = None,
                            advance: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Every metric of `represent` on `data` over the seeds (an int: seeds 0..n-1; default the
    protocol's count). `advance(n)` as n codes are looked up (a progress bar over
    `seeds * protocol.draws_per_seed()`)."""
    if isinstance(seeds, int) or seeds is None:
        p = get_protocol(protocol, seeds if isinstance(seeds, int) else None)
        seed_list = list(range(p.seeds))
    else:
        seed_list = [int(s) for s in seeds]
        p = get_protocol(protocol, len(seed_list))
    codes_of = CodeCache(data, represent, advance=advance)
    per_seed: list[dict[str, Any]] = []
    timings: dict[str, float] = {name: 0.0 for name, _, _ in METRICS}
    for seed in seed_list:
        out: dict[str, Any] = {}
        for number, (name, fn, field) in enumerate(METRICS):
            t0 = time.perf_counter()
            out[name] = fn(codes_of, data, np.random.default_rng([seed, number]), getattr(p, field))
            timings[name] += time.perf_counter() - t0
        per_seed.append(out)
    result: dict[str, Any] = {}
    spreads = {key: spread([s[m][k] for s in per_seed]) for key, (m, k) in HEADLINE.items()}
    for key, s in spreads.items():
        if key.startswith("dci."):
            result.setdefault("dci", {})[key[4:]] = s["median"]
        else:
            result[key] = s["median"]
    first = per_seed[0]
    mi = first["mig"]["mutual_info"]
    entropy = first["mig"]["entropy"]
    result["protocol"] = {**p.describe(), "seeds": seed_list, "versions": versions(),
                          "rng": "numpy.random.default_rng([seed, metric number])",
                          "representation_calls": codes_of.encoded}
    result["spread"] = spreads
    result["details"] = {
        "train_scores": {k: spread([s[m][t] for s in per_seed]) for k, m, t in (
            ("betavae_score", "betavae_score", "train_accuracy"),
            ("factorvae_score", "factorvae_score", "train_accuracy"),
            ("dci.informativeness", "dci", "informativeness_train"),
            ("explicitness", "modularity_explicitness", "explicitness_train"))},
        "mig_per_factor": spread_lists([s["mig"]["per_factor"] for s in per_seed]),
        "factorvae_active_latents": [s["factorvae_score"]["num_active_dims"] for s in per_seed],
        "seconds_per_metric": {k: round(v, 3) for k, v in timings.items()},
    }
    result["factors"] = {"names": list(data.factor_names), "sizes": list(data.factor_sizes), "data": data.description}
    result["latent_factor_mi"] = {
        "normalised": (mi / entropy[None, :]).tolist(), "nats": mi.tolist(), "factor_entropy": entropy.tolist(),
        "seed": seed_list[0], "bins": p.mig.bins, "points": p.mig.num_train,
        "note": "I(binned latent i; factor k) / H(factor k), from the MIG points of the first seed"}
    result["dci_importance"] = first["dci"]["importance"].tolist()
    return result


def spread_lists(rows: list[list[float]]) -> dict[str, list[float]]:
    a = np.asarray(rows, dtype=np.float64)
    return {"median": np.median(a, 0).tolist(), "min": a.min(0).tolist(), "max": a.max(0).tolist()}


def captures(result: dict[str, Any], threshold: float = 0.05) -> list[tuple[str, float]]:
    """Per latent, the factor it shares the most (normalised) information with, and that value;
    'none' below `threshold`."""
    names = result["factors"]["names"]
    out = []
    for row in np.asarray(result["latent_factor_mi"]["normalised"]):
        k = int(np.argmax(row))
        out.append((names[k] if row[k] >= threshold else "none", float(row[k])))
    return out


# --- a trained run --------------------------------------------------------------------------------
def representation_of(model: Any, batch_size: int = 256) -> Represent:
    """The mean of q(z|x) of a model with `encode(x) -> (mean, logvar)` (or -> code), as numpy."""
    import torch

    from genlab.models.contract import device_of

    device = device_of(model)

    @torch.no_grad()
    def represent(x: np.ndarray) -> np.ndarray:
        parts = []
        for i in range(0, len(x), batch_size):
            out = model.encode(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device))
            mean = out[0] if isinstance(out, (tuple, list)) else out
            parts.append(mean.detach().float().reshape(len(mean), -1).cpu().numpy())
        return np.concatenate(parts).astype(np.float64)

    return represent


def open_run_model(run_dir: str | Path, which: str = "best", device: str = "cpu") -> tuple[Any, Any, Any]:
    """(run, config, model) of a dSprites run whose model encodes; one-line errors otherwise."""
    from genlab.runs import Run

    run = Run.open(run_dir)
    cfg = run.config()
    if cfg.data.name != "dsprites":
        raise GenlabError(f"{run.path}: a run on {cfg.data.name}; the disentanglement metrics need dSprites' "
                          "ground-truth factors (train on a dSprites config, e.g. vae-dsprites-quick)")
    model = run.load_model(which, device)
    if not getattr(model, "has_encoder", False) or not callable(getattr(model, "encode", None)):
        raise GenlabError(f"{run.path}: a {cfg.model.name} model has no encoder; the metrics score the codes "
                          "of an encoder (VAE-family models)")
    model.eval()
    return run, cfg, model


def evaluate_run(run_dir: str | Path, protocol: str = DEFAULT_PROTOCOL, n_seeds: int = DEFAULT_SEEDS,
                 data_root: str | None = None, progress: bool = True, which: str = "best",
                 device: str = "cpu", figures: bool = True) -> dict[str, Any]:
    """Every metric of a trained dSprites run's mean code; writes RUN/eval/disentanglement.json and
    (with `figures`) the MI heatmap and the traversals under RUN/eval/disentanglement/."""
    from genlab.io import atomic_write_json

    p = get_protocol(protocol, n_seeds)
    run, cfg, model = open_run_model(run_dir, which, device)
    data = DSpritesFactors(data_root)
    t0 = time.perf_counter()
    if progress:
        from genlab.progress import progress as bar

        with bar(f"disentanglement metrics ({p.name}, {p.seeds} seeds; codes looked up)",
                 p.seeds * p.draws_per_seed()) as advance:
            result = evaluate_representation(representation_of(model), data, p, p.seeds, advance)
    else:
        result = evaluate_representation(representation_of(model), data, p, p.seeds)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["run"] = {"path": str(run.path), "model": cfg.model.name, "checkpoint": which,
                     "representation": "mean of q(z|x) (model.encode(x)[0])"}
    if figures:
        from genlab.eval.disentanglement.figures import write_figures

        result["figures"] = {k: str(v.relative_to(run.path)) for k, v in
                             write_figures(model, result, data, run.eval / FIGURE_DIR).items()}
    atomic_write_json(run.eval / RESULT_FILE, result)
    return result
