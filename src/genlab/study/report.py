"""The study report: study.json, study.html and study.md, read from the run directories of a study folder.

Every number comes from the runs' own files (eval/fid.json, eval/loglik.json, eval/quality.json,
eval/sprite_quality.json, eval/reconstruction.json, eval/priors.json, vqvae-compare/comparison.json),
so rewriting the report after a change to a run changes the report. Beside each of genlab's numbers
stands the study's, with the estimator or feature extractor, N and a `comparable` flag that says
why not when it is false. Nothing here trains or imports the trainer.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.eval import units
from genlab.io import atomic_write_json, atomic_write_text
from genlab.study.plan import DISENTANGLE_MODELS, STAGES, Stage, stages_of

# What the study reported (../shared/DESIGN.md, "The reference study")
STUDY_FID = {"dcgan": 131.7, "lsgan": 129.3, "bigan": 133.1}
STUDY_DCGAN_BEST_EPOCH = 5  # "best images after epoch 5 of 10; the generator loss shoots up after epoch 7"
STUDY_FID_PROTOCOL = "FID, 2048-d Inception pool features (pytorch-fid weights), 1000 generated vs 1000 real, best epoch"
STUDY_LOGLIK = {v[0].lower(): v for v in units.STUDY_VALUES}  # dataset -> (name, p, dims)
STUDY_LOGLIK_WHY = {  # one line each; units.study_reference()["why"] has the arithmetic
    "dsprites": f"p = 0.0253 would give one image 2.5% of all probability, but dSprites has 737,280 (uniform over "
                f"them: {-math.log(737_280):.1f} nats each)",
    "celeba": f"impossible under the study's MSE (unit-variance Gaussian) likelihood: log p(x|z) <= "
              f"{-0.5 * 3 * 128 * 128 * math.log(2 * math.pi):,.0f} nats on 49,152 dimensions",
}
STUDY_VQVAE = "reconstruction grids for K = 128, 256, 512; K = 512 looked best (no number reported)"
STUDY_PRIORS = "a 100-component Gaussian mixture and a small VAE over the code maps; decoded samples shown (no number)"


# The disentanglement comparison: approximate published ranges on dSprites, read by eye from the score
# distributions of Locatello et al. 2019 ("Challenging Common Assumptions in the Unsupervised Learning of
# Disentangled Representations", ICML; Figure 13 in the appendix: beta-VAE, AnnealedVAE, FactorVAE, beta-TCVAE,
# DIP-VAE-I/II, 6 hyperparameter values x 50 seeds each, 300,000 steps at batch 64). One range per metric,
# the four methods here pooled (their distributions overlap widely; the figure gives no per-model table).
# Approximate to about +-0.05: check the figure before quoting a bound. None = the paper reports no value.
PUBLISHED_DSPRITES: dict[str, tuple[float, float] | None] = {
    "betavae_score": (0.60, 0.90),
    "factorvae_score": (0.45, 0.85),
    "mig": (0.00, 0.40),
    "sap": (0.00, 0.10),
    "dci.disentanglement": (0.00, 0.60),
    "dci.completeness": None,
    "dci.informativeness": None,
    "modularity": (0.75, 0.95),
    "explicitness": None,  # Ridgeway & Mozer 2018; not in Locatello et al.'s study
}
DISENTANGLE_METRICS = {
    "betavae_score": "BetaVAE score", "factorvae_score": "FactorVAE score", "mig": "MIG", "sap": "SAP",
    "dci.disentanglement": "DCI disentanglement", "dci.completeness": "DCI completeness",
    "dci.informativeness": "DCI informativeness", "modularity": "modularity", "explicitness": "explicitness",
}
PUBLISHED_NOTE = ("published: approximate ranges read from Locatello et al. 2019 (ICML), Figure 13, dSprites, over "
                  "all methods, hyperparameters and 50 seeds, each model trained 300,000 steps at batch 64; genlab's "
                  "runs train far fewer steps (column 'steps'), so lower scores are expected")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _stage_of(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


# --- rows -----------------------------------------------------------------------------------------
ROW_KEYS = ("experiment", "stage", "setting", "metric", "study", "study_raw", "study_protocol", "genlab", "genlab_se",
            "epoch", "bits_per_dim", "estimator", "n", "converged", "comparable", "why_not", "source")


def _row(**values: Any) -> dict[str, Any]:
    """A comparison row: every row has every key (None where it does not apply)."""
    return {**{k: None for k in ROW_KEYS}, **values}


def fid_row(stage: Stage, run: Path, profile: str) -> dict[str, Any] | None:
    fid = _read(run / "eval" / "fid.json")
    if not fid or not fid.get("best"):
        return None
    best = fid["best"]
    model = stage.name.split("-")[0]
    why = []
    if not fid.get("comparable_to_published_fid"):
        why.append("fallback features (the Inception weights were not found): NOT an FID")
    if fid.get("dims") != 2048:
        why.append(f"{fid.get('dims')}-d features (study: 2048)")
    if (best.get("n_fake"), best.get("n_real")) != (1000, 1000):
        why.append(f"N = {best.get('n_fake')} vs {best.get('n_real')} (study: 1000 vs 1000)")
    if profile != "full":
        why.append(f"profile {profile}: reduced training (see the profile)")
    if stage.setting == "recipe":
        why.append("genlab's recipe, not the study's settings (by design)")
    return _row(experiment=stage.experiment, stage=stage.name, setting=stage.setting,
                metric="FID (best epoch)" if fid.get("comparable_to_published_fid") else "FD, fallback features (best epoch)",
                study=STUDY_FID.get(model), study_protocol=STUDY_FID_PROTOCOL, genlab=best.get("fid"),
                epoch=None if best.get("epoch") is None else best["epoch"] + 1, estimator=fid.get("extractor"),
                n=f"{best.get('n_fake')} vs {best.get('n_real')}",
                comparable=not why or why == ["genlab's recipe, not the study's settings (by design)"],
                why_not="; ".join(why), source=f"{stage.name}/eval/fid.json")


def loglik_row(stage: Stage, run: Path) -> dict[str, Any] | None:
    table = _read(run / "eval" / "loglik.json")
    if not table or not table.get("images"):
        return None
    images = table["images"]
    best = [r["best"] for r in images if r.get("best")]
    estimators = sorted({b["estimator"] for b in best})
    values = [b["log_px"] for b in best]
    ses = [r[b["estimator"]]["se"] for r, b in ((r, r["best"]) for r in images if r.get("best"))]
    name, p, dims = STUDY_LOGLIK.get(stage.dataset, (stage.dataset, None, None))
    mean = sum(values) / len(values) if values else None
    # the spread over images (they differ) and the estimators' own error, both stated
    spread = (math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1) / len(values))
              if values and len(values) > 1 else None)
    bits = [b["bits_per_dim"] for b in best]
    samples = ", ".join(f"{k} {v.get('n_samples')}" for k, v in table.get("estimators", {}).items())
    return _row(experiment=stage.experiment, stage=stage.name, setting=stage.setting,
                metric=f"log p(x), nats per image ({table.get('likelihood')} likelihood)",
                study=None if p is None else math.log(p), study_raw=p, genlab=mean, genlab_se=spread,
                estimator_se_max=max(ses) if ses else None, bits_per_dim=sum(bits) / len(bits) if bits else None,
                convention=table.get("convention"),
                estimator=(", ".join(estimators) or "none converged") + f" (samples: {samples})",
                n=f"{len(images)} images ({len(values)} converged)", converged=len(values) == len(images),
                comparable=False,
                why_not=STUDY_LOGLIK_WHY.get(stage.dataset, "the study reported no value") + " (note below the table)",
                source=f"{stage.name}/eval/loglik.json")


def quality_row(stage: Stage, run: Path) -> dict[str, Any] | None:
    """FD/KID/precision/recall (eval/quality.json) and pixel diversity/coverage (eval/pixel_scores.json)."""
    q = _read(run / "eval" / "quality.json")
    px = _read(run / "eval" / "pixel_scores.json")
    if not q and not px:
        return None
    q, px = q or {}, px or {}
    keys = ("fd", "kid", "kid_se", "precision", "recall", "n_real", "n_fake", "extractor", "dims", "held_out")
    pixel_keys = ("diversity", "coverage", "real_diversity", "real_coverage")
    sources = [f"{stage.name}/eval/{name}" for name, d in (("quality.json", q), ("pixel_scores.json", px)) if d]
    return {"stage": stage.name, "setting": stage.setting, **{k: q.get(k) for k in keys},
            **{k: px.get(k) for k in pixel_keys}, "pixel_n": px.get("n_fake"), "source": ", ".join(sources)}


def dcgan_fid_curve(folder: Path) -> dict[str, Any] | None:
    """The study-settings DCGAN's FD/FID at every scored epoch (its eval/fid.json), beside the study's
    best epoch; None before that run has scored an epoch."""
    fid = _read(folder / "dcgan" / "eval" / "fid.json")
    history = (fid or {}).get("history") or []
    if not history:
        return None
    best = min(history, key=lambda h: h["fid"])
    return {"epochs": [h["epoch"] + 1 for h in history], "fid": [h["fid"] for h in history],
            "best_epoch": best["epoch"] + 1, "best_fid": best["fid"],
            "n": f"{history[-1].get('n_fake')} vs {history[-1].get('n_real')}",
            "comparable": bool(fid.get("comparable_to_published_fid")),  # type: ignore[union-attr]
            "study_best_epoch": STUDY_DCGAN_BEST_EPOCH, "study_best_fid": STUDY_FID["dcgan"],
            "source": "dcgan/eval/fid.json"}


def plot_dcgan_fid_curve(curve: dict[str, Any], out: Path) -> Path:
    """genlab's curve with its best epoch marked, and the study's best epoch as a dashed line (its FID
    is printed, not drawn: fallback FDs and Inception FIDs do not share a scale)."""
    from genlab.viz.curves import plot_epoch_curve

    name = "FID" if curve["comparable"] else "FD, fallback features (not an FID)"
    return plot_epoch_curve(
        curve["epochs"], curve["fid"], out, ylabel=f"{name}, N = {curve['n']}",
        label="genlab, the study's settings", best=(curve["best_epoch"], curve["best_fid"]),
        reference_epoch=curve["study_best_epoch"],
        reference_label=f"the study: best after epoch {curve['study_best_epoch']} (FID {curve['study_best_fid']})",
        title="DCGAN on Bitmoji, epoch by epoch")


def sprite_row(stage: Stage, run: Path) -> dict[str, Any] | None:
    q = _read(run / "eval" / "sprite_quality.json")
    if not q:
        return None
    return {"stage": stage.name, "setting": stage.setting, "likelihood": _likelihood(run),
            **{k: q.get(k) for k in ("mean_iou", "empty_fraction", "n", "prior")},
            "source": f"{stage.name}/eval/sprite_quality.json"}


def _likelihood(run: Path) -> str | None:
    import yaml

    try:
        return (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("model", {}).get("likelihood")
    except (OSError, yaml.YAMLError):
        return None


def reconstruction_row(stage: Stage, run: Path) -> dict[str, Any] | None:
    r = _read(run / "eval" / "reconstruction.json")
    if not r:
        return None
    return {"stage": stage.name, **{k: v for k, v in r.items() if not isinstance(v, (list, dict))},
            "source": f"{stage.name}/eval/reconstruction.json"}


def metric_value(result: dict[str, Any], key: str) -> float | None:
    """A metric of eval/disentanglement.json by dotted key ("dci.completeness"): its median over evaluation
    seeds (or the plain number); None when absent."""
    node: Any = result
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node = node.get("median")
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def training_steps(run: Path) -> int | None:
    """Optimiser steps of the model (batches) the run's config asks for."""
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    data, trainer = cfg.get("data", {}), cfg.get("trainer", {})
    subset = data.get("subset") or 737_280
    train = subset - int(round(subset * data.get("val_fraction", 0.1)))
    return math.ceil(train / data.get("batch_size", 64)) * int(trainer.get("max_epochs", 1))


def disentanglement_rows(folder: Path, stages: tuple[Stage, ...]) -> list[dict[str, Any]]:
    """One row per model and metric: the median over evaluation seeds of each training seed's run,
    summarised as median [min, max] over the training seeds, beside the published range."""
    rows = []
    for model, title in DISENTANGLE_MODELS.items():
        runs = [folder / s.name for s in stages if s.group == model]
        results = {run.name: _read(run / "eval" / "disentanglement.json") for run in runs}
        found = {name: r for name, r in results.items() if r}
        if not found:
            continue
        steps = sorted({n for n in (training_steps(run) for run in runs if run.name in found) if n})
        for key, name in DISENTANGLE_METRICS.items():
            per_seed = {run: metric_value(r, key) for run, r in found.items()}
            values = sorted(v for v in per_seed.values() if v is not None)
            published = PUBLISHED_DSPRITES.get(key)
            rows.append({"model": model, "title": title, "metric": key, "name": name,
                         "median": _median(values), "min": values[0] if values else None,
                         "max": values[-1] if values else None, "n_seeds": len(values), "per_seed": per_seed,
                         "published_min": published[0] if published else None,
                         "published_max": published[1] if published else None,
                         "steps": steps, "protocol": next(iter(found.values())).get("protocol"),
                         "source": [f"{run}/eval/disentanglement.json" for run in found]})
    return rows


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _range(lo: Any, mid: Any, hi: Any, spec: str = ".3f") -> str:
    """"median [min, max]", or "–" when there is no value."""
    return "–" if mid is None else f"{_fmt(mid, spec)} [{_fmt(lo, spec)}, {_fmt(hi, spec)}]"


# --- pictures -------------------------------------------------------------------------------------
def _last(folder: Path, pattern: str = "epoch_*.png") -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def pictures(folder: Path, stage: Stage) -> list[tuple[Path, str]]:
    run = folder / stage.name
    candidates: list[tuple[Path | None, str]] = []
    if stage.kind == "compare":
        candidates.append((run / "comparison.png", "held-out originals, then one row of reconstructions per K"))
    elif stage.group:  # the disentanglement comparison: genlab disentangle's pictures
        candidates += [(p, f"{p.stem.replace('_', ' ')} (genlab disentangle)") for p in sorted((run / "eval").rglob("*.png"))]
        candidates += [(_last(run / "reconstructions"), "reconstructions (originals above)"),
                       (run / "plots" / "loss_curves.png", "loss curves")]
    elif stage.name.startswith("vae"):
        candidates += [(run / "samples" / "final_10x10.png", "10x10 samples (N(0, I) prior)"),
                       (run / "samples" / "final_10x10_aggregate_gmm.png", "10x10 samples (aggregate-posterior GMM prior)"),
                       (run / "eval" / "sprite_matches.png", "samples (binarised) above their best-matching sprites"),
                       (_last(run / "reconstructions"), "reconstructions (originals above)"),
                       (run / "plots" / "loss_curves.png", "loss curves")]
    elif stage.name.startswith("vqvae"):
        candidates += [(_last(run / "reconstructions"), "reconstructions (originals above)")]
        candidates += [(p, f"decoded samples of the {p.stem.removeprefix('prior_').replace('_', ' ')} prior")
                       for p in sorted((run / "samples").glob("prior_*.png"))]
    else:
        candidates += [(_last(run / "samples"), "samples at the last epoch"),
                       (run / "plots" / "fid.png", "FD/FID every epoch"),
                       (run / "plots" / "loss_curves.png", "generator and discriminator losses"),
                       (run / "plots" / "traverse" / "coords.png", "latent traversal (coordinates)"),
                       (run / "plots" / "traverse" / "slerp.png", "slerp interpolations"),
                       (run / "plots" / "traverse" / "recon.png", "reconstructions (originals above)")]
    return [(p, c) for p, c in candidates if p is not None and p.is_file()]


# --- the whole ------------------------------------------------------------------------------------
def collect_study(folder: str | Path) -> dict[str, Any]:
    """study.json's content: the stages with their status and time, the comparison rows, the tables."""
    from genlab import __version__

    folder = Path(folder)
    state = _read(folder / "state.json")
    if state is None:
        raise GenlabError(f"{folder}: not a genlab study folder (no readable state.json); run `genlab study` first")
    profile = state.get("profile", "?")
    study_stages = stages_of(state.get("study", "reference"))
    stages, comparisons, quality, sprites, recon = [], [], [], [], []
    for stage in study_stages:
        entry = state.get("stages", {}).get(stage.name, {"status": "pending"})
        run = folder / stage.name
        stages.append({"name": stage.name, "title": stage.title, "experiment": stage.experiment,
                       "setting": stage.setting, "status": entry.get("status", "pending"),
                       "message": entry.get("message", ""), "seconds": entry.get("seconds"),
                       "cpu_seconds": entry.get("cpu_seconds"),
                       "steps": {k: v["seconds"] for k, v in entry.get("steps", {}).items()},
                       "run": stage.name if run.is_dir() else None})
        if not run.is_dir():
            continue
        for row in (fid_row(stage, run, profile), loglik_row(stage, run)):
            if row:
                comparisons.append(row)
        for rows, fn in ((quality, quality_row), (sprites, sprite_row), (recon, reconstruction_row)):
            row = fn(stage, run)  # type: ignore[operator]
            if row:
                rows.append(row)
    curve = dcgan_fid_curve(folder)
    vq = _read(folder / "vqvae-compare" / "comparison.json")
    priors = _read(folder / "vqvae-K512" / "eval" / "priors.json")
    return {"format": 1, "genlab_version": __version__, "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": profile, "profile_source": state.get("profile_source"),
            "total_seconds": round(sum(s["seconds"] or 0 for s in stages), 1),
            "total_cpu_seconds": round(sum(s["cpu_seconds"] or 0 for s in stages), 1),
            "stages": stages, "comparisons": comparisons, "gan_held_out": quality, "dcgan_fid_curve": curve,
            "sprites": sprites,
            "reconstruction": recon,
            "vqvae": {"study": STUDY_VQVAE, **(vq or {})} if vq else None,
            "priors": {"study": STUDY_PRIORS, **priors} if priors else None,
            "study_loglik_reference": units.study_reference(), "study": state.get("study", "reference"),
            "disentanglement": {"rows": disentanglement_rows(folder, study_stages), "note": PUBLISHED_NOTE}}


def write_study_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """study.json and study.html in `out` (default: the study folder); pictures outside `out` are
    copied beside the page (report_assets/), so `out` can be a docs folder. Returns the page."""
    from genlab.viz.report import Assets, render_template

    folder = Path(folder)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    data = collect_study(folder)
    page = out / "study.html"
    exported = out.resolve() != folder.resolve()
    assets = Assets(page, embed=False)
    try:
        if data["dcgan_fid_curve"]:
            figure = plot_dcgan_fid_curve(data["dcgan_fid_curve"], assets.new_figure(DCGAN_CURVE))
            data["dcgan_fid_curve"]["plot"] = assets.src(figure, DCGAN_CURVE)
        gallery = []
        for stage in stages_of(data["study"]):
            found = pictures(folder, stage)
            if exported:  # a docs copy: small palette PNGs beside the page, linked relatively
                found = [(small_copy(p, out / "pictures" / stage.name / f"{p.parent.name}_{p.name}"), c)
                         for p, c in found]  # samples/epoch_009.png and reconstructions/epoch_009.png differ
            pics = [{"src": assets.src(p, f"{stage.name}/{p.name}"), "caption": c} for p, c in found]
            if pics:
                gallery.append({"stage": stage.name, "title": stage.title, "pictures": pics,
                                "report": f"{stage.name}/report.html" if not exported
                                and (folder / stage.name / "report.html").is_file() else None})
        html = render_template("study.html.j2", {"study": data, "gallery": gallery, "fmt": _fmt,
                                                 "folder": str(folder)})
    finally:
        assets.close()
    atomic_write_json(out / "study.json", data)
    atomic_write_text(out / "study.md", markdown_summary(data))
    atomic_write_text(page, html)
    return page


DCGAN_CURVE = "dcgan_fid_curve.png"


def markdown_summary(data: dict[str, Any]) -> str:
    """study.md: the comparison rows and the held-out GAN and sprite tables, for a README or a note."""
    f = _fmt
    lines = [f"genlab study, profile `{data['profile']}` (genlab {data['genlab_version']}, {data['generated_utc']}); "
             f"{f(data['total_seconds'] / 60, '.0f')} min of stages.", "",
             "| # | stage | setting | metric | study | genlab | estimator / features | N | comparable |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in data["comparisons"]:
        genlab = f(r["genlab"]) + (f" ± {f(r['genlab_se'])}" if r["genlab_se"] is not None else "")
        features = str(r["estimator"]).split(" (")[0]
        lines.append(f"| {r['experiment']} | {r['stage']} | {r['setting']} | {r['metric']} | {f(r['study'])} | {genlab} | "
                     f"{features} | {r['n']} | {'yes' if r['comparable'] else 'no: ' + str(r['why_not'])} |")
    lines += _md_table(["GAN stage", "setting", "FD", "KID", "precision", "recall", "N fake vs real (held out)",
                        "pixel diversity (real)", "coverage (real)"],
                       [[r["stage"], r["setting"], f(r["fd"]), f"{f(r['kid'], '.4f')} ± {f(r['kid_se'], '.4f')}",
                         f(r["precision"], ".3f"), f(r["recall"], ".3f"), f"{r['n_fake']} vs {r['n_real']}",
                         f"{f(r['diversity'], '.3f')} ({f(r['real_diversity'], '.3f')})",
                         f"{f(r['coverage'], '.3f')} ({f(r['real_coverage'], '.3f')})"]
                        for r in data["gan_held_out"]])
    curve = data.get("dcgan_fid_curve")
    if curve:
        per_epoch = ", ".join(f"{e}: {f(v, '.1f')}" for e, v in zip(curve["epochs"], curve["fid"]))
        lines += ["", f"DCGAN (the study's settings), {'FID' if curve['comparable'] else 'FD, fallback features'} "
                  f"by epoch ({curve['n']}): {per_epoch}; best epoch {curve['best_epoch']}. The study: best after "
                  f"epoch {curve['study_best_epoch']} of 10 (FID {curve['study_best_fid']})."]
        if curve.get("plot"):
            lines += ["", f"![DCGAN FD/FID by epoch beside the study's best epoch]({curve['plot']})"]
    lines += _md_table(["dSprites stage", "setting", "likelihood", "samples from", "mean best IoU", "empty"],
                       [[r["stage"], r["setting"], r["likelihood"], r["prior"], f(r["mean_iou"], ".3f"),
                         f(100 * r["empty_fraction"] if r["empty_fraction"] is not None else None, ".0f") + "%"]
                        for r in data["sprites"]])
    dis = data.get("disentanglement") or {}
    if dis.get("rows"):
        lines += ["", f"Disentanglement on dSprites: median [min, max] over training seeds; {dis['note']}."]
        lines += _md_table(["model", "metric", "genlab", "seeds", "steps", "published"],
                           [[r["title"], r["name"], _range(r["min"], r["median"], r["max"]), r["n_seeds"],
                             ", ".join(f"{n:,}" for n in r["steps"]) or "–",
                             f"{f(r['published_min'])}–{f(r['published_max'])}" if r["published_min"] is not None
                             else "not reported"] for r in dis["rows"]])
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table after a blank line, or nothing when there are no rows."""
    if not rows:
        return []
    return ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def small_copy(src: Path, dest: Path, colours: int = 256, max_side: int = 1000) -> Path:
    """`src` as a palette PNG (at most `colours` colours), halved while wider than `max_side` (the
    128-px CelebA grids), so a docs copy of the report stays a few MB."""
    from PIL import Image

    from genlab.io import atomic_path

    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as img:
        img = img.convert("RGB")
        while max(img.size) > max_side:
            img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
        small = img.quantize(colours, method=Image.Quantize.MEDIANCUT)
        with atomic_path(dest) as tmp:
            small.save(tmp, format="PNG", optimize=True)
    return dest


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)
