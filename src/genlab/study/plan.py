"""What `genlab study` runs: the stages of the reference study and the profiles that size them.

A stage is one experiment of the study table (../shared/DESIGN.md): one ordinary run directory
(`<study>/<stage>/`), trained from a bundled config with the profile's overrides, then the steps
that make its results (sample grids, log-likelihoods, traversals, held-out quality, priors). The
profile (a YAML file in genlab/configs/study/, or one of your own) says, per stage, which config,
which overrides and how many quiet-CPU minutes it is expected to take (for the ETA).

Two studies have stages: "reference" (the reference study, `STAGES`; the default) and "disentangle"
(`DISENTANGLE_STAGES`: VAE, beta-VAE, beta-TCVAE and FactorVAE on dSprites, 3 seeds each, scored by
`genlab disentangle`); a profile says which with its `study` key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab.config import PACKAGE_CONFIGS
from genlab.errors import GenlabError

PROFILES_DIR = PACKAGE_CONFIGS / "study"
DATASETS_WITH_ROOTS = ("celeba", "tinyimagenet", "bitmoji")  # dSprites is rendered: built in


@dataclass(frozen=True)
class Stage:
    name: str                        # its run folder inside the study folder
    title: str                       # what a reader sees in the report
    experiment: int                  # the row of the study table it reproduces (1-4; 5: the disentanglement comparison)
    dataset: str                     # what it trains on
    setting: str = "study"           # "study" (the study's settings) or "recipe" (genlab's, beside it)
    steps: tuple[str, ...] = ()      # after training, in order (see pipeline.STEPS)
    kind: str = "train"              # "train": a run; "compare": the VQ-VAE codebook comparison
    needs: tuple[str, ...] = ()      # stages whose runs it reads
    group: str = ""                  # the disentanglement comparison: the model whose seeds it pools


STAGES: tuple[Stage, ...] = (
    Stage("vae-celeba", "VAE on CelebA 128x128 (MSE likelihood)", 1, "celeba", steps=("samples", "loglik")),
    # sprites first: it fits the aggregate-posterior prior when the config asks for one, which the grid then shows
    Stage("vae-dsprites", "VAE on dSprites (MSE likelihood)", 1, "dsprites", steps=("sprites", "samples", "loglik")),
    Stage("vqvae-K128", "VQ-VAE on Tiny-ImageNet, K = 128", 2, "tinyimagenet"),
    Stage("vqvae-K256", "VQ-VAE on Tiny-ImageNet, K = 256", 2, "tinyimagenet"),
    Stage("vqvae-K512", "VQ-VAE on Tiny-ImageNet, K = 512, with its priors", 2, "tinyimagenet",
          steps=("codes", "prior:gmm", "prior:vae", "prior:pixelcnn", "prior-eval")),
    Stage("vqvae-compare", "VQ-VAE codebook sizes side by side", 2, "tinyimagenet", kind="compare",
          needs=("vqvae-K128", "vqvae-K256", "vqvae-K512")),
    Stage("dcgan", "DCGAN on Bitmoji", 3, "bitmoji", steps=("traverse", "quality")),
    Stage("lsgan", "LSGAN on Bitmoji", 4, "bitmoji", steps=("traverse", "quality")),
    Stage("bigan", "BiGAN on Bitmoji", 4, "bitmoji", steps=("traverse", "quality")),
    Stage("vae-dsprites-recipe", "VAE on dSprites, genlab's recipe", 1, "dsprites", setting="recipe",
          steps=("sprites", "samples", "loglik")),
    Stage("dcgan-recipe", "DCGAN on Bitmoji, genlab's recipe", 3, "bitmoji", setting="recipe",
          steps=("traverse", "quality")),
)
STAGE_NAMES = tuple(s.name for s in STAGES)

# The disentanglement comparison (issue 23): each model of Locatello et al.'s study, trained from its bundled
# config with 3 seeds and scored by `genlab disentangle` (genlab.eval.disentanglement.evaluate_run).
DISENTANGLE_MODELS = {"vae": "VAE (beta = 1)", "betavae": "beta-VAE", "btcvae": "beta-TCVAE", "factorvae": "FactorVAE"}
DISENTANGLE_SEEDS = (0, 1, 2)
DISENTANGLE_STAGES: tuple[Stage, ...] = tuple(
    Stage(f"{model}-seed{seed}", f"{title} on dSprites, seed {seed}", 5, "dsprites", steps=("disentangle",),
          group=model)
    for model, title in DISENTANGLE_MODELS.items() for seed in DISENTANGLE_SEEDS)
STUDIES: dict[str, tuple[Stage, ...]] = {"reference": STAGES, "disentangle": DISENTANGLE_STAGES}


def stages_of(study: str) -> tuple[Stage, ...]:
    """The stages of a study ("reference" or "disentangle")."""
    try:
        return STUDIES[study]
    except KeyError:
        raise GenlabError(f"unknown study {study!r} (studies: {', '.join(STUDIES)})") from None


@dataclass(frozen=True)
class StageSettings:
    config: str | None               # bundled config name or YAML path (None for a compare stage)
    overrides: tuple[str, ...] = ()
    minutes: float = 5.0             # expected on a quiet 2-core CPU under this profile (for the ETA)
    steps: dict[str, Any] = field(default_factory=dict)  # per-step options, e.g. {loglik: {samples: 1000}}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    stages: dict[str, StageSettings]
    source: str
    study: str = "reference"         # which stages (STUDIES)

    def settings(self, stage: str) -> StageSettings:
        return self.stages[stage]

    def stage_list(self) -> tuple[Stage, ...]:
        return stages_of(self.study)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A bundled profile (cpu, full, tiny, disentangle, ...) or a YAML file of the same shape."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise GenlabError(f"unknown study profile {name_or_path!r} (bundled: {', '.join(profile_names())}; "
                              "or give the path of a YAML file shaped like them)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GenlabError(f"{path}: not a readable YAML study profile ({exc})") from None
    study = str(data.get("study", "reference"))
    if study not in STUDIES:
        raise GenlabError(f"{path}: unknown study {study!r} (studies: {', '.join(STUDIES)})")
    names = [s.name for s in STUDIES[study]]
    stages = data.get("stages") or {}
    unknown = sorted(set(stages) - set(names))
    missing = [s for s in names if s not in stages]
    if unknown or missing:
        raise GenlabError(f"{path}: " + "; ".join(filter(None, [
            f"unknown stage(s) {', '.join(unknown)}" if unknown else "",
            f"missing stage(s) {', '.join(missing)}" if missing else ""])) + f" (stages of the {study} study: "
            f"{', '.join(names)})")
    parsed = {}
    for name, raw in stages.items():
        raw = dict(raw or {})
        extra = sorted(set(raw) - {"config", "overrides", "minutes", "steps"})
        if extra:
            raise GenlabError(f"{path}: stage {name}: unknown key(s) {', '.join(extra)} "
                              "(allowed: config, overrides, minutes, steps)")
        parsed[name] = StageSettings(raw.get("config"), tuple(_flat(raw.get("overrides") or [])),
                                     float(raw.get("minutes", 5.0)), dict(raw.get("steps") or {}))
    return Profile(str(data.get("profile", path.stem)), str(data.get("description", "")), parsed, str(path), study)


def _flat(items: list[Any]) -> list[str]:
    """Overrides may nest one level (a YAML alias of a shared list, then the stage's own)."""
    return [str(o) for item in items for o in (_flat(item) if isinstance(item, list) else [item])]


def parse_data_roots(items: list[str] | None) -> dict[str, str]:
    """`["celeba=PATH", "bitmoji=PATH"]` -> {"celeba": PATH, ...}; a typo is a one-line error."""
    roots: dict[str, str] = {}
    for item in items or []:
        name, sep, root = item.partition("=")
        if not sep or not root:
            raise GenlabError(f"--data {item!r}: give NAME=PATH, e.g. --data celeba=../data/celeba")
        if name not in DATASETS_WITH_ROOTS:
            raise GenlabError(f"--data {name}=...: unknown dataset (datasets with a root: "
                              f"{', '.join(DATASETS_WITH_ROOTS)}; dSprites is built in)")
        roots[name] = root
    return roots


def skipped_stages(skip: list[str] | None, stages: tuple[Stage, ...] = STAGES) -> dict[str, str]:
    """Stage name -> why it is skipped. `--skip` takes stage names, dataset names (every stage on it) or,
    in the disentanglement comparison, model names (every seed of it); a stage whose input stages are
    skipped is skipped too."""
    datasets = {s.dataset for s in stages}
    groups = {s.group for s in stages if s.group}
    names = [s.name for s in stages]
    out: dict[str, str] = {}
    for item in skip or []:
        if item in names:
            out[item] = f"--skip {item}"
        elif item in datasets or item in groups:
            out.update({s.name: f"--skip {item}" for s in stages if item in (s.dataset, s.group)})
        else:
            raise GenlabError(f"--skip {item!r}: not a stage or a dataset (stages: {', '.join(names)}; "
                              f"datasets: {', '.join(sorted(datasets))}"
                              + (f"; models: {', '.join(sorted(groups))})" if groups else ")"))
    for s in stages:
        lost = [n for n in s.needs if n in out]
        if lost and s.name not in out:
            out[s.name] = f"needs {', '.join(lost)} (skipped)"
    return out
