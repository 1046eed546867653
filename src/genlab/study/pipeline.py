"""Runs the stages of `genlab study`, each an ordinary run directory inside one study folder.

    <study>/state.json         which stages and steps are done, with their wall times (the resume record)
    <study>/<stage>/           a normal run: `genlab train --resume`, `genlab report` etc. work on it
    <study>/vqvae-compare/     the codebook comparison (grids + table) of the three VQ-VAE runs
    <study>/study.json|html    the report (genlab.study.report), rewritten after every stage

Before anything trains, every stage's config is built (a typo in a profile fails at once) and every
dataset it needs is found (a missing one is a one-line error naming `--data` and `--skip`). A rerun
skips what state.json marks done and resumes an interrupted training from its last.ckpt; a step that
fails is recorded, the study goes on with the next stage, and the report says which failed and why.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from genlab.config import ExperimentConfig, build_config, load_config
from genlab.errors import GenlabError, Interrupted
from genlab.io import atomic_write_json
from genlab.runs import Run
from genlab.study.plan import DATASETS_WITH_ROOTS, Profile, Stage, load_profile, parse_data_roots, skipped_stages

STATE_FILE = "state.json"
STATE_FORMAT = 1


# --- the resume record ----------------------------------------------------------------------------
class StudyState:
    """state.json: per stage its status and the steps done (with seconds); written atomically after
    every step, so a kill at any moment loses at most the step in progress."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder, self.data = folder, data

    @classmethod
    def open(cls, folder: Path, profile: Profile) -> "StudyState":
        path = folder / STATE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise GenlabError(f"{path}: damaged ({exc}); move it away to start this study again") from None
            if data.get("profile") != profile.name:
                raise GenlabError(f"{folder} holds a study run with --profile {data.get('profile')}; rerun with "
                                  f"that profile to continue it, or give another folder for --profile {profile.name}")
            return cls(folder, data)
        return cls(folder, {"format": STATE_FORMAT, "profile": profile.name, "profile_source": profile.source,
                            "study": profile.study, "created_utc": _utc(), "stages": {}})

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"status": "pending", "steps": {}})

    def done(self, stage: str, step: str) -> bool:
        return step in self.stage(stage)["steps"]

    def mark(self, stage: str, step: str, started: tuple[float, float]) -> None:
        """`started` = (wall, CPU) clocks at the step's start (`clocks()`): CPU-seconds say what a step
        costs even on a machine shared with other jobs, where wall time does not."""
        wall, cpu = clocks()
        self.stage(stage)["steps"][step] = {"seconds": round(wall - started[0], 1),
                                            "cpu_seconds": round(cpu - started[1], 1), "finished_utc": _utc()}
        self.save()

    def set(self, stage: str, status: str, **extra: Any) -> None:
        entry = self.stage(stage)
        entry.update(status=status, **extra)
        if status == "done":
            entry.pop("message", None)
        entry["seconds"] = round(sum(s["seconds"] for s in entry["steps"].values()), 1)
        entry["cpu_seconds"] = round(sum(s.get("cpu_seconds", 0) for s in entry["steps"].values()), 1)
        self.save()

    def save(self) -> None:
        self.data["updated_utc"] = _utc()
        atomic_write_json(self.folder / STATE_FILE, self.data)


def clocks() -> tuple[float, float]:
    return time.monotonic(), time.process_time()


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- building the stage configs --------------------------------------------------------------------
def stage_config(stage: Stage, profile: Profile, roots: dict[str, str], folder: Path) -> ExperimentConfig:
    """The stage's bundled config + the profile's overrides, its run placed in the study folder and
    its dataset root (absolute, so the study can be continued from any folder) set from --data."""
    settings = profile.settings(stage.name)
    if not settings.config:
        raise GenlabError(f"{profile.source}: stage {stage.name} needs a config")
    cfg = load_config(settings.config, list(settings.overrides))
    data = cfg.to_dict()
    data["output"].update(runs_dir=str(folder.resolve()), run_name=stage.name)
    if stage.dataset in roots:
        data["data"]["root"] = str(Path(roots[stage.dataset]).expanduser().resolve())
    return build_config(data, f"study stage {stage.name} ({profile.source})")


def check_datasets(configs: dict[str, ExperimentConfig]) -> None:
    """Every dataset a stage needs, found before anything trains; all that are missing in one line."""
    from genlab.data.layouts import index_dataset

    problems: dict[str, str] = {}
    for name, cfg in configs.items():
        dataset = cfg.data.name
        if dataset not in DATASETS_WITH_ROOTS or dataset in problems:
            continue
        try:
            index_dataset(dataset, cfg.data.root)
        except GenlabError as exc:
            problems[dataset] = f"{dataset} (stage {name}): {exc}"
    if problems:
        fixes = " ".join(f"--data {d}=PATH" for d in problems)
        skips = " ".join(f"--skip {d}" for d in problems)
        raise GenlabError(f"dataset(s) not found before training: {'; '.join(problems.values())}. "
                          f"Give the folders with {fixes}, or leave those stages out with {skips}")


# --- the steps after training ----------------------------------------------------------------------
StepFn = Callable[[Run, ExperimentConfig, dict[str, Any], Console], Any]


AGGREGATE_GRID = "final_10x10_aggregate_gmm.png"


def _samples(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    """The 10x10 grid from the model's own prior (N(0, I) for a VAE), and, when an aggregate-posterior
    prior was fitted (genlab's dSprites recipe), a second grid from it."""
    from genlab.eval.aggregate_prior import prior_path
    from genlab.sampling import sample_grid

    n, seed = opts.get("n", 100), opts.get("seed", 0)
    out = sample_grid(run.path, n=n, out=run.samples / "final_10x10.png", seed=seed)
    if prior_path(run).is_file():
        from genlab.eval.sprites import prior_samples
        from genlab.viz.grids import save_grid

        images, _ = prior_samples(run, run.load_model("best"), n, seed, "aggregate-gmm")
        save_grid(images, run.samples / AGGREGATE_GRID, nrow=min(10, n))
    return out


def _loglik(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.evaluate import evaluate_loglik

    return evaluate_loglik(run.path, console=console, **opts)


def _sprites(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.eval.sprites import sprite_quality

    return sprite_quality(run.path, **{"grid": run.eval / "sprite_matches.png", **opts})


def _traverse(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.viz.traverse import traverse_run

    return traverse_run(run.path, **{"mode": "all", **opts})


def _quality(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.eval.gan_quality import evaluate_gan_quality
    from genlab.eval.pixel_scores import N_SAMPLES, evaluate_pixel_scores

    # the scores that need no pretrained network: on the profile's n, else 500 (coverage depends on N)
    evaluate_pixel_scores(run.path, **{"n": N_SAMPLES, **{k: opts[k] for k in ("n", "seed", "which") if k in opts}})
    return evaluate_gan_quality(run.path, **opts)


def _codes(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.eval.codes import write_code_maps

    return write_code_maps(run.path, console=console, **opts)


def _prior(kind: str) -> StepFn:
    def step(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
        from genlab.train.prior_module import train_prior

        resume = (run.prior_dir(kind) / "last.ckpt").is_file()  # an interrupted prior continues
        return train_prior(run.path, kind, cfg, resume=resume, **opts)
    return step


def _prior_eval(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.eval.priors import evaluate_priors, format_table

    result = evaluate_priors(run.path, **opts)
    console.print(format_table(result))
    return result


def _disentangle(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.eval.disentanglement import evaluate_run

    return evaluate_run(run.path, **opts)


def _report(run: Run, cfg: ExperimentConfig, opts: dict[str, Any], console: Console) -> Any:
    from genlab.viz.report import write_report

    return write_report([run.path])  # again: the run's own report now holds the evaluation tables


STEPS: dict[str, StepFn] = {
    "samples": _samples, "loglik": _loglik, "sprites": _sprites, "traverse": _traverse, "quality": _quality,
    "codes": _codes, "prior:gmm": _prior("gmm"), "prior:vae": _prior("vae"), "prior:pixelcnn": _prior("pixelcnn"),
    "prior-eval": _prior_eval, "disentangle": _disentangle, "report": _report,
}


# --- running ---------------------------------------------------------------------------------------
class StudyClock:
    """The ETA: the profile's expected minutes of what is left, scaled by how this machine has done
    so far against the same expectations (stages run in this invocation)."""

    def __init__(self, expected: dict[str, float]) -> None:
        self.expected, self.t0 = expected, time.monotonic()
        self.spent_expected = self.spent_actual = 0.0

    def record(self, stage: str, seconds: float) -> None:
        self.spent_expected += self.expected[stage] * 60
        self.spent_actual += seconds

    def speed(self) -> float:
        if self.spent_expected < 30:
            return 1.0
        return min(max(self.spent_actual / self.spent_expected, 0.2), 20.0)

    def eta(self, remaining: list[str]) -> tuple[float, str]:
        seconds = sum(self.expected[s] for s in remaining) * 60 * self.speed()
        return seconds, time.strftime("%H:%M", time.localtime(time.time() + seconds))


def open_study(folder: Path, prof: Profile, stages: tuple[Stage, ...], roots: dict[str, str],
               skipped: dict[str, str]) -> tuple[dict[str, ExperimentConfig], StudyState]:
    """The training configs of the stages that will run (their datasets checked before anything starts)
    and the study's state in `folder`, with the skipped stages marked as such."""
    configs = {s.name: stage_config(s, prof, roots, folder) for s in stages
               if s.kind == "train" and s.name not in skipped}
    check_datasets(configs)
    folder.mkdir(parents=True, exist_ok=True)
    state = StudyState.open(folder, prof)
    for name, why in skipped.items():
        state.set(name, "skipped", message=why)
    state.data["skipped"] = skipped
    state.save()
    return configs, state


def attempt_stage(stage: Stage, cfg: ExperimentConfig | None, prof: Profile, folder: Path, state: StudyState, console: Console,
                  extra_callbacks: list | None) -> str:
    """Run one stage and record how it went: its outcome, or "failed" with the reason (a user's mistake
    or a bug: the other stages still run). Ctrl-C or SIGTERM marks it interrupted and stops the study."""
    try:
        outcome = run_stage(stage, cfg, prof, folder, state, console, extra_callbacks)
    except (KeyboardInterrupt, Interrupted) as exc:
        state.set(stage.name, "interrupted", message=str(exc) or "interrupted (Ctrl-C or SIGTERM)")
        raise Interrupted(f"study interrupted in stage {stage.name}; continue with the same command "
                          f"(finished stages are kept, this one resumes)") from None
    except GenlabError as exc:  # one stage's mistake must not cost the others: record it, go on
        state.set(stage.name, "failed", message=str(exc))
        console.print(f"[bold red]stage {stage.name} failed:[/] {exc}")
        return "failed"
    except Exception as exc:  # a bug: its traceback is shown, and the other stages still run
        console.print_exception()
        state.set(stage.name, "failed", message=f"{type(exc).__name__}: {exc} (a bug: traceback in the log)")
        return "failed"
    state.set(stage.name, "done")
    return outcome


def run_study(out: str | Path, profile: str | Path = "cpu", data: list[str] | None = None,
              skip: list[str] | None = None, console: Console | None = None,
              extra_callbacks: list | None = None) -> dict[str, str]:
    """Run (or continue) the study in folder `out`; returns {stage: what happened}: done (now),
    finished (before), resumed, skipped, failed. Writes study.json / study.html after every stage."""
    from genlab.study.report import write_study_report

    console = console or Console()
    prof = load_profile(profile)
    stages = prof.stage_list()
    skipped = skipped_stages(skip, stages)
    folder = Path(out)
    configs, state = open_study(folder, prof, stages, parse_data_roots(data), skipped)

    todo = [s for s in stages if s.name not in skipped]
    clock = StudyClock({s.name: prof.settings(s.name).minutes for s in stages})
    outcome: dict[str, str] = {name: "skipped" for name in skipped}
    console.print(f"[bold]genlab study[/] --profile {prof.name} in {folder}: {len(todo)} stages"
                  + (f", {len(skipped)} skipped ({', '.join(skipped)})" if skipped else "")
                  + f"; expected ~{sum(clock.expected[s.name] for s in todo):.0f} min on a quiet 2-core CPU")
    try:
        for i, stage in enumerate(todo):
            if state.stage(stage.name).get("status") == "done":
                outcome[stage.name] = "finished"
                continue
            left, at = clock.eta([s.name for s in todo[i:]])
            console.rule(f"[bold][{i + 1}/{len(todo)}] {stage.title}[/] ({stage.name}): ~{clock.expected[stage.name]:.0f} min"
                         f" expected; study ETA {at} ({left / 60:.0f} min left)")
            t0 = time.monotonic()
            outcome[stage.name] = attempt_stage(stage, configs.get(stage.name), prof, folder, state, console,
                                                extra_callbacks)
            clock.record(stage.name, time.monotonic() - t0)
            write_study_report(folder)
    finally:
        write_study_report(folder)
    failed = [n for n, o in outcome.items() if o == "failed"]
    console.print(f"[bold green]study written:[/] {folder / 'study.html'} (and study.json)"
                  + (f"; [bold red]failed stages:[/] {', '.join(failed)} (see study.json; rerun to retry them)"
                     if failed else ""))
    return outcome


def run_stage(stage: Stage, cfg: ExperimentConfig | None, profile: Profile, folder: Path, state: StudyState,
              console: Console, extra_callbacks: list | None = None) -> str:
    settings = profile.settings(stage.name)
    if stage.kind == "compare":
        t0 = clocks()
        compare_vqvae(folder, stage)
        state.mark(stage.name, "compare", t0)
        return "done"
    assert cfg is not None
    what = "done"
    if not state.done(stage.name, "train"):
        t0 = clocks()
        run, what = train_stage(cfg, folder / stage.name, extra_callbacks)
        state.mark(stage.name, "train", t0)
    run = Run.open(folder / stage.name)
    for step in (*stage.steps, "report"):
        if state.done(stage.name, step):
            continue
        if step not in STEPS:
            raise GenlabError(f"stage {stage.name}: unknown step {step!r} (known: {', '.join(STEPS)})")
        state.set(stage.name, "running", step=step)
        console.print(f"[dim]{stage.name}:[/] {step}")
        t0 = clocks()
        STEPS[step](run, cfg, dict(settings.steps.get(step) or {}), console)
        state.mark(stage.name, step, t0)
    return what


def train_stage(cfg: ExperimentConfig, path: Path, extra_callbacks: list | None) -> tuple[Run, str]:
    """Train a stage's run: fresh, or resumed from its last checkpoint, or (already finished) not at all."""
    from genlab.train.runner import train

    if path.is_dir() and (path / "config.yaml").is_file():
        run = Run(path)
        if run.status().get("status") == "finished":
            return run, "finished"
        if run.last_checkpoint.is_file() or run.best_checkpoint.is_file():
            return train(cfg, resume=path, extra_callbacks=extra_callbacks), "resumed"
    if path.exists():  # killed before its first checkpoint: keep it aside, start again
        aside = path.parent / ".incomplete" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
    return train(cfg, extra_callbacks=extra_callbacks), "done"


def compare_vqvae(folder: Path, stage: Stage) -> Path:
    from genlab.train.vqvae_module import run_compression
    from genlab.train.vqvae_sweep import compare_runs

    runs = {}
    for name in stage.needs:
        run = Run.open(folder / name)
        runs[run.config().model.num_codes] = run
    out = folder / stage.name
    out.mkdir(parents=True, exist_ok=True)
    return compare_runs(out, dict(sorted(runs.items())), run_compression)
