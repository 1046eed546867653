"""Marginal log-likelihood of images under a latent-variable model: every estimator side by side.

The estimators live in their own modules (importance.py, appendix_d.py, ais.py, hmc.py); this one
runs the chosen ones on the *same* images and gathers one row per image: the ELBO, and for each
estimator log p(x) in nats +- se, bits/dim +- se and log10 p(x) (the study's raw probabilities),
with the estimator's name, sample count, HMC acceptance rate and run time per image.

    table = loglik_table(model, images, image_ids, estimators=("is", "appendix-d", "ais"), samples=5000)
    table.save(run_dir / "loglik.json"); rich.print(table.rich_table())

Every entry carries its ESS, a replicate standard error, a convergence gain and a `converged`
flag (one rule, `genlab.eval.estimate`); each row carries `best`, the largest converged stochastic
lower bound (null when none converged). Appendix D is a diagnostic and never supplies `best`.
Run times on the demo model are in benchmarks/RESULTS.md ("Log-likelihoods a user can trust").
"""

from __future__ import annotations

import inspect
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from genlab.defaults import ESTIMATORS, LOGLIK
from genlab.errors import GenlabError
from genlab.eval import units
from genlab.eval.ais import BDMCResult, ais, bdmc, simulate  # noqa: F401  (re-exported)
from genlab.eval.appendix_d import appendix_d
from genlab.eval.estimate import CONVERGENCE, Estimate, check_images
from genlab.eval.importance import importance_sampling
from genlab.io import atomic_write_bytes, atomic_write_json

CONVERGENCE_RULE = (f"converged = ESS >= {CONVERGENCE['min_ess_samples']} importance samples (or half the chains, "
                    f"AIS / Appendix D) and replicate se <= {CONVERGENCE['max_se']} nat and |gain| <= "
                    f"{CONVERGENCE['max_gain']} nat (IS: K/10 -> K; AIS: a quarter of the temperatures -> all; "
                    "Appendix D: a quarter of the draws -> all)")

NAMES = {
    "is": "importance sampling (stochastic lower bound)",
    "appendix-d": "Kingma & Welling Appendix D (HMC + fitted q(z), reciprocal IS): a DIAGNOSTIC, it can err "
                  "in either direction and its fitted q(z) is poor in a high-dimensional latent space",
    "ais": "annealed importance sampling (Wu et al. 2017; stochastic lower bound)",
}
LOWER_BOUNDS = ("is", "ais")
BEST_RULE = ("best = the largest converged stochastic lower bound (IS, AIS); Appendix D never supplies it "
             "(a diagnostic, biased either way). " + CONVERGENCE_RULE)
AGREEMENT_NATS = 1.0
# How many samples each estimator averages when the caller passes `samples`: IS uses it as K.
# Appendix D (L) and AIS (chains x temperatures) cost one or more decoder gradients per sample,
# so they keep their own defaults (see their functions) unless given options.
DEFAULT_ELBO_SAMPLES = 100


def resolve_estimators(names: str | Sequence[str]) -> tuple[str, ...]:
    """'all', one name, or a sequence of names -> a tuple in canonical order."""
    if isinstance(names, str):
        names = ESTIMATORS if names == "all" else (names,)
    names = tuple(dict.fromkeys(n.replace("_", "-") for n in names))
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown or not names:
        raise GenlabError(f"unknown log-likelihood estimator {unknown or names!r}; choose from "
                          f"{', '.join(ESTIMATORS)} or 'all'")
    return tuple(n for n in ESTIMATORS if n in names)


@dataclass
class LoglikTable:
    image_ids: list
    num_dims: int
    likelihood: str
    elbo: np.ndarray
    elbo_se: np.ndarray
    elbo_samples: int
    estimates: dict[str, Estimate] = field(default_factory=dict)
    seed: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def convention(self) -> str:
        return units.convention(self.likelihood)

    def _bpd_se(self, se: np.ndarray) -> np.ndarray:
        return np.asarray(se) / (self.num_dims * math.log(2))

    def best(self, i: int) -> dict[str, Any] | None:
        """The best estimate of image i: the largest converged stochastic lower bound, or None."""
        cands = [(float(est.log_px[i]), name) for name, est in self.estimates.items()
                 if name in LOWER_BOUNDS and est.converged is not None and bool(est.converged[i])]
        if not cands:
            return None
        value, name = max(cands)
        why = "largest converged stochastic lower bound"
        if len(cands) > 1:
            why += " of " + ", ".join(n for _, n in sorted(cands, reverse=True))
        higher = [n for n, est in self.estimates.items() if n in LOWER_BOUNDS and n != name
                  and float(est.log_px[i]) > value + AGREEMENT_NATS]
        if higher:  # a lower bound above the best one: the best is itself too low
            why += f"; WARNING: the unconverged {', '.join(higher)} lies more than {AGREEMENT_NATS:g} nat above it"
        diag = self.estimates.get("appendix-d")
        if diag is not None and diag.converged is not None and bool(diag.converged[i]):
            agrees = abs(float(diag.log_px[i]) - value) <= AGREEMENT_NATS
            why += f"; appendix-d {'agrees' if agrees else 'disagrees'} (within {AGREEMENT_NATS:g} nat: {agrees})"
        return {"estimator": name, "log_px": value,
                "bits_per_dim": float(units.bits_per_dim(value, self.num_dims, self.likelihood)), "why": why}

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for i, image_id in enumerate(self.image_ids):
            row: dict[str, Any] = {"id": image_id, "elbo": float(self.elbo[i]), "elbo_se": float(self.elbo_se[i])}
            for name, est in self.estimates.items():
                row[name] = {
                    "log_px": float(est.log_px[i]),
                    "se": float(est.se[i]),
                    "ess": None if est.ess is None else float(est.ess[i]),
                    "gain": None if est.gain is None else float(est.gain[i]),
                    "converged": bool(est.converged[i]) if est.converged is not None else False,
                    "kind": est.kind,
                    "bits_per_dim": float(units.bits_per_dim(est.log_px[i], self.num_dims, self.likelihood)),
                    "bits_per_dim_se": float(self._bpd_se(est.se[i])),
                    "log10_px": float(units.nats_to_log10(est.log_px[i])),
                    "log10_px_se": float(est.se[i] / math.log(10)),
                    "acceptance": None if est.acceptance is None else float(est.acceptance[i]),
                }
            row["best"] = self.best(i)
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "likelihood": self.likelihood,
            "num_dims": self.num_dims,
            "convention": self.convention,
            "units": {"log_px": "nats per image", "bits_per_dim": "bits per dimension",
                      "log10_px": "log10 p(x) (p = 10 ** value)",
                      "se": "one standard error: spread of independent replicates (disjoint sample blocks / "
                            "chain groups)", "ess": "effective sample size of the weights",
                      "gain": "nats added by the last samples (convergence check)",
                      "comparability": units.COMPARABILITY},
            "study_reference": units.study_reference(),
            "rules": {"best": BEST_RULE, "converged": CONVERGENCE_RULE,
                      "printing": "a lower bound that is not converged prints as '>= value (not converged, ESS n)' "
                                  "without an error bar"},
            "seed": self.seed,
            "elbo": {"n_samples": self.elbo_samples, "note": "true ELBO (beta = 1), mean over encoder samples"},
            "estimators": {
                name: {"name": NAMES[name], "kind": est.kind, "n_samples": est.n_samples,
                       "seconds_per_image": est.seconds_per_image,
                       "mean_acceptance": None if est.acceptance is None else float(np.mean(est.acceptance)),
                       "n_converged": int(np.sum(est.converged)) if est.converged is not None else 0,
                       "settings": est.settings}
                for name, est in self.estimates.items()
            },
            "images": self.rows(),
            **({"provenance": self.provenance} if self.provenance else {}),
        }

    def save(self, path: str | Path) -> Path:
        atomic_write_json(path, self.to_dict())
        return Path(path)

    def rich_table(self):
        from rich.table import Table

        table = Table(title="log p(x) per image (nats): value ± replicate se [ESS]; "
                            "best = largest converged lower bound",
                      caption=self._caption(), caption_justify="left")
        table.add_column("image", justify="right")
        table.add_column("ELBO", justify="right")
        for name in self.estimates:
            label = f"{name} (diagnostic)" if self.estimates[name].kind == "diagnostic" else name
            table.add_column(label, justify="right")
        table.add_column("best (nats)", justify="right")
        table.add_column("best bits/dim", justify="right")
        table.add_column("best log10 p", justify="right")
        for row in self.rows():
            cells = [str(row["id"]), f"{row['elbo']:.2f}"]
            for name in self.estimates:
                cells.append(format_entry(row[name]))
            best = row["best"]
            if best is None:
                cells += ["none converged", "–", "–"]
            else:
                cells += [f"{best['log_px']:.2f} ({best['estimator']})", f"{best['bits_per_dim']:.4f}",
                          f"{units.nats_to_log10(best['log_px']):.2f}"]
            table.add_row(*cells)
        return table

    def _caption(self) -> str:
        lines = [self.convention, units.COMPARABILITY, f"ELBO: {self.elbo_samples} encoder samples per image",
                 BEST_RULE]
        for name, est in self.estimates.items():
            acc = "" if est.acceptance is None else f", HMC acceptance {np.mean(est.acceptance):.2f}"
            n_conv = int(np.sum(est.converged)) if est.converged is not None else 0
            lines.append(f"{name}: {NAMES[name]}; {est.n_samples} samples{acc}, "
                         f"{est.seconds_per_image:.2f} s/image; converged on {n_conv}/{len(self.image_ids)} images; "
                         f"settings {est.settings}")
        ref = units.study_reference()
        lines.append("the study's raw probabilities in nats: " + "; ".join(
            f"{r['dataset']} p = {r['p']:g} -> {r['log_px_nats']:.1f} nats" for r in ref["values"]) + ". " + ref["why"])
        return "\n".join(lines)


def format_entry(r: dict[str, Any]) -> str:
    """One estimator's cell: '-117.52 ± 0.08 [ESS 412]' when converged; a lower bound that is not
    converged is '≥ -123.10 (not converged, ESS 1.0)' with no error bar."""
    ess = "–" if r.get("ess") is None else f"{r['ess']:.1f}"
    if r["converged"]:
        return f"{r['log_px']:.2f} ± {r['se']:.2f} [ESS {ess}]"
    if r.get("kind") == "lower bound":
        return f"≥ {r['log_px']:.2f} (not converged, ESS {ess})"
    return f"{r['log_px']:.2f} (not converged, ESS {ess})"


def loglik_table(
    model: nn.Module,
    images: torch.Tensor,
    image_ids: Sequence | None = None,
    estimators: str | Sequence[str] = ("is",),
    samples: int = LOGLIK["samples"],
    seed: int = LOGLIK["seed"],
    batch_size: int = 256,
    **estimator_options: dict[str, Any],
) -> LoglikTable:
    """Run the chosen estimators on the same `images` (B, C, H, W) and gather one row per image.

    samples: K for importance sampling. Appendix D and AIS take their options from keyword
    dicts named after them, e.g. appendix_d={"n_samples": 1000, "density": "gmm"},
    ais={"n_chains": 16, "n_intermediate": 200, "init": "prior"}; `is_` passes IS options.
    The ELBO comes from the IS log-weights when IS runs with the encoder proposal, otherwise from
    100 encoder samples. Every estimator draws its random numbers per image from (seed, image id),
    so an image's numbers do not depend on the other images in the table.
    """
    check_images(images)
    names = resolve_estimators(estimators)
    ids = list(range(images.shape[0])) if image_ids is None else [_plain(i) for i in image_ids]
    if len(ids) != images.shape[0]:
        raise GenlabError(f"{len(ids)} image ids for {images.shape[0]} images")
    options = {k.rstrip("_").replace("_", "-"): dict(v) for k, v in estimator_options.items()}
    unknown = set(options) - set(ESTIMATORS)
    if unknown:
        raise GenlabError(f"options for unknown estimators {sorted(unknown)}; use is_=..., appendix_d=..., ais=...")
    common = {"batch_size": batch_size, "seed": seed, "image_ids": ids}
    estimates: dict[str, Estimate] = {}
    for name in names:
        fn = _FUNCTIONS[name]
        opts = {**common, **options.get(name, {})}
        allowed = set(inspect.signature(fn).parameters) - {"model", "x", "_return_steps", "image_ids"}
        if set(opts) - allowed - {"image_ids"}:
            raise GenlabError(f"unknown option(s) {sorted(set(opts) - allowed - {'image_ids'})} "
                              f"for estimator {name!r}; "
                              f"it takes {sorted(allowed)}")
        if name == "is":
            opts.setdefault("n_samples", samples)
        estimates[name] = fn(model, images, **opts)
    elbo_src = estimates.get("is")
    if elbo_src is None or "elbo" not in elbo_src.extras:
        elbo_src = importance_sampling(model, images, DEFAULT_ELBO_SAMPLES, proposal="encoder", **common)
    return LoglikTable(
        image_ids=ids, num_dims=int(images[0].numel()), likelihood=str(model.likelihood),
        elbo=elbo_src.extras["elbo"], elbo_se=elbo_src.extras["elbo_se"],
        elbo_samples=int(elbo_src.settings.get("elbo_samples", elbo_src.n_samples)),
        estimates=estimates, seed=seed,
    )


_FUNCTIONS = {"is": importance_sampling, "appendix-d": appendix_d, "ais": ais}


def bdmc_table(result: BDMCResult, image_ids: Sequence) -> dict[str, Any]:
    """The JSON of a BDMC run: per simulated image the lower (forward AIS) and upper (reverse AIS)
    bounds, the bracket width, and both sides' se and ESS."""
    rows = []
    for i, image_id in enumerate(image_ids):
        lo, up = result.lower, result.upper
        rows.append({"id": _plain(image_id), "lower": float(lo.log_px[i]), "lower_se": float(lo.se[i]),
                     "upper": float(up.log_px[i]), "upper_se": float(up.se[i]),
                     "bracket_width": float(result.gap[i]),
                     "lower_ess": float(lo.ess[i]), "upper_ess": float(up.ess[i])})
    return {"what": "BDMC (Grosse et al. 2016) on images simulated from the model: the true log p(x) lies "
                    "between lower and upper (in expectation); the bracket width bounds AIS's error at these "
                    "settings", "units": "nats per image", "settings": result.lower.settings,
            "mean_bracket_width": float(np.mean(result.gap)), "max_bracket_width": float(np.max(result.gap)),
            "images": rows}


def save_evaluation(table: LoglikTable, eval_dir: str | Path, images: torch.Tensor,
                    settings: dict[str, Any] | None = None, prefix: str = "loglik") -> Path:
    """Keep every evaluation: write `<prefix>-<UTC timestamp>.json` and the scored pixels as
    `<prefix>_images-<timestamp>.npy` (uint8, N x C x H x W, x 255), then refresh `<prefix>.json`
    and `<prefix>_images.npy` as copies of the latest. Earlier tables are never overwritten; each
    table records its settings, its files and the earlier tables. Returns the `<prefix>.json` path."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name, i = f"{prefix}-{stamp}", 1
    while (eval_dir / f"{name}.json").exists():
        i += 1
        name = f"{prefix}-{stamp}-{i}"
    pixels = images.detach().to("cpu", torch.float64).numpy() * 255
    u8 = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    earlier = sorted(p.name for p in eval_dir.glob(f"{prefix}-*.json"))
    images_name = name.replace(prefix, f"{prefix}_images", 1) + ".npy"
    table.provenance = {
        "table_file": f"{name}.json", "images_file": images_name, "latest": f"{prefix}.json",
        "latest_images_file": f"{prefix}_images.npy",
        "images": "uint8 N x C x H x W, the scored pixels x 255 (row i = images[i]; its dataset index is its id)",
        "images_exact_in_uint8": bool(np.abs(pixels - u8).max() < 1e-6),
        "created_utc": stamp, "earlier_tables": earlier, "settings": dict(settings or {}),
    }
    buf = io.BytesIO()
    np.save(buf, u8)
    atomic_write_bytes(eval_dir / images_name, buf.getvalue())
    table.save(eval_dir / f"{name}.json")
    atomic_write_bytes(eval_dir / f"{prefix}_images.npy", buf.getvalue())
    table.save(eval_dir / f"{prefix}.json")
    return eval_dir / f"{prefix}.json"


def _plain(i):
    return i.item() if hasattr(i, "item") else i
