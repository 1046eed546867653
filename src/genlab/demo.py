"""`make demo`: the study's VAE on dSprites within a CPU budget, evaluated, with every artefact listed.

After training: when the config asks for it (`model.sample_prior: aggregate-gmm`, genlab's recipe),
a Gaussian mixture is fitted to the training posterior means and the final samples come from it;
the N(0, I) samples are drawn and scored too. On dSprites, both are scored by their best IoU
against all 737,280 sprites (`genlab.eval.sprites.sprite_quality`).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from genlab.config import VAEConfig, load_config
from genlab.evaluate import evaluate_loglik
from genlab.runs import Run
from genlab.train.runner import train
from genlab.viz.grids import save_grid
from genlab.viz.report import write_report

PRIOR_NAMES = {"standard": "N(0, I)", "aggregate-gmm": "aggregate-posterior GMM"}
GRID_NAMES = {"standard": "final_10x10_standard_normal_prior.png",
              "aggregate-gmm": "final_10x10_aggregate_gmm_prior.png"}


def run_demo(config: str = "vae-dsprites-quick", overrides: list[str] | None = None,
             console: Console | None = None) -> None:
    console = console or Console()
    cfg = load_config(config, overrides)
    t0 = time.perf_counter()
    console.rule(f"[bold]genlab demo[/]: {cfg.name}")
    run = train(cfg)
    trained = time.perf_counter() - t0
    model_cfg = cfg.model
    prior = model_cfg.sample_prior if isinstance(model_cfg, VAEConfig) else "standard"
    if prior == "aggregate-gmm":
        from genlab.eval.aggregate_prior import fit_aggregate_prior

        assert isinstance(model_cfg, VAEConfig)
        with console.status("fitting the aggregate-posterior GMM on the training latents"):
            fitted = fit_aggregate_prior(run.path, n_images=model_cfg.prior_images,
                                         components=model_cfg.prior_components, seed=cfg.trainer.seed)
        console.print(f"samples from an {fitted['description']}")
    grids = final_grids(run, prior)
    quality = None
    if cfg.data.name == "dsprites":
        from genlab.eval.sprites import sprite_quality

        quality = sprite_quality(run.path, n=100, seed=0, prior=prior, grid=run.eval / "sprite_matches.png",
                                 console=console)
    loglik = evaluate_loglik(run.path, console=console)
    write_report([run.path])  # again: training wrote it before the likelihood table existed
    recon = sorted(run.reconstructions.glob("epoch_*.png"))
    artefacts = Table(title=f"artefacts in {run.path} (trained in {trained:.0f} s, total "
                            f"{time.perf_counter() - t0:.0f} s)", show_lines=False)
    artefacts.add_column("what")
    artefacts.add_column("where (inside the run directory)", overflow="fold")
    rows: list[tuple[str, object]] = [(f"10x10 samples, {PRIOR_NAMES[p]} prior", path) for p, path in grids.items()]
    if quality is not None:
        rows.append(("samples beside their best-matching sprites", quality.get("grid", "-")))
        rows.append(("sprite IoU of the samples", run.eval / "sprite_quality.json"))
    rows += [("reconstructions (originals above)", recon[-1] if recon else "-"),
             ("loss curves", run.plots / "loss_curves.png"), ("log-likelihood table", loglik),
             ("metrics log", run.metrics_path), ("checkpoints", run.checkpoints),
             ("config snapshot", run.config_path)]
    for what, path in rows:
        artefacts.add_row(what, _relative(path, run.path))
    if run.report.is_file():
        artefacts.add_row("report", _relative(run.report, run.path))
    console.print(artefacts)
    if quality is not None:
        console.print(quality_line(quality))


def final_grids(run: Run, prior: str, n: int = 100, seed: int = 0) -> dict[str, Path]:
    """10x10 grids of the final model's samples: from `prior`, and from N(0, I) when that is another."""
    from genlab.eval.sprites import prior_samples

    model = run.load_model("best")
    out = {}
    for which in dict.fromkeys([prior, "standard"]):
        images, used = prior_samples(run, model, n, seed, which)
        out[used] = save_grid(images, run.samples / GRID_NAMES[used], nrow=10)
    return out


def quality_line(q: dict) -> str:
    """One line per prior: do the samples look like sprites?"""
    lines = [f"samples ({PRIOR_NAMES[q['prior']]} prior, n={q['n']}): mean best IoU against all "
             f"{q['sprites']:,} sprites {q['mean_iou']:.3f}, {100 * q['empty_fraction']:.0f}% empty; "
             + shapes_and_crisp(q)]
    if "standard" in q:
        s = q["standard"]
        lines.append(f"samples (N(0, I) prior, n={q['n']}): mean best IoU {s['mean_iou']:.3f}, "
                     f"{100 * s['empty_fraction']:.0f}% empty; " + shapes_and_crisp(s))
    return "\n".join(lines)


def shapes_and_crisp(q: dict) -> str:
    """What the mean IoU cannot say (a round blob matches a rotated square at ~0.8): which shapes the
    samples match and how many match one sprite crisply."""
    from genlab.eval.sprites import CRISP_IOU

    shares = q.get("shapes") or {}
    if all(v is None for v in shares.values()):
        matched = "no non-empty sample"
    else:
        matched = ", ".join(f"{100 * v:.0f}% {name}s" for name, v in shares.items())
    crisp = q.get("crisp_fraction")
    crisp_text = "–" if crisp is None else f"{100 * crisp:.0f}%"
    return f"best matches: {matched}; crisp (IoU >= {CRISP_IOU}): {crisp_text}"


def _relative(path, root) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
