"""Load a trained model back from a run directory or a checkpoint, with clear errors on mismatch."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from genlab.config import ExperimentConfig, build_config
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.train.base import CHECKPOINT_FORMAT, GenlabModule
from genlab.train.registry import build_module


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise GenlabError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    check_stamp(ckpt.get("genlab") if isinstance(ckpt, dict) else None, path)
    return ckpt


def check_stamp(stamp: dict | None, path: Path) -> dict:
    """The `genlab` stamp of a checkpoint or an export: present, and of a format this version reads."""
    if not stamp:
        raise GenlabError(f"{path}: not a genlab checkpoint (no 'genlab' stamp); it was written by another tool")
    if str(stamp.get("format")) != str(CHECKPOINT_FORMAT):
        raise GenlabError(f"{path}: checkpoint format {stamp.get('format')} (genlab {stamp.get('version')}) is not "
                          f"supported by this genlab (format {CHECKPOINT_FORMAT}); retrain or use that version")
    return stamp


def check_model(saved_model: str | None, cfg: ExperimentConfig, path: Path, described_by: Path | str) -> None:
    if saved_model != cfg.model.name:
        raise GenlabError(f"{path}: checkpoint holds a {saved_model!r} model but {described_by} "
                          f"describes a {cfg.model.name!r} model")


def build_with_weights(cfg: ExperimentConfig, load: Callable[[GenlabModule], object], path: Path,
                       described_by: Path | str) -> GenlabModule:
    """Build the module `cfg` describes and fill it with `load(module)`; a shape or key mismatch
    becomes one line naming both files."""
    module = build_module(cfg)
    try:
        load(module)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GenlabError(f"{path}: weights do not fit the model in {described_by} ({first})") from None
    return module


def load_module(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu",
                cfg: ExperimentConfig | None = None) -> GenlabModule:
    """The LightningModule of a run with its trained weights, in eval mode on `device`."""
    run = Run.open(run_dir)
    cfg = cfg or run.config()
    path = run.checkpoint(which)
    ckpt = read_checkpoint(path)
    check_model(ckpt["genlab"].get("model"), cfg, path, run.config_path)
    if "config" in ckpt.get("hyper_parameters", {}):
        cfg = build_config(ckpt["hyper_parameters"]["config"], str(path))
    module = build_with_weights(cfg, lambda m: m.load_state_dict(ckpt["state_dict"]), path, run.config_path)
    return module.to(device).eval()


def load_checkpoint_file(path: str | Path, device: str | torch.device = "cpu") -> GenlabModule:
    """A checkpoint file on its own: its config travels inside it (the hyper-parameters)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if "config" not in ckpt.get("hyper_parameters", {}):
        raise GenlabError(f"{path}: checkpoint carries no config; load its run directory instead")
    cfg = build_config(ckpt["hyper_parameters"]["config"], str(path))
    check_model(ckpt["genlab"].get("model"), cfg, path, f"{path} (its own config)")
    module = build_with_weights(cfg, lambda m: m.load_state_dict(ckpt["state_dict"]), path, path)
    return module.to(device).eval()


# --- exports: safetensors weights with the config beside them ------------------------------------
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.yaml"


def export_paths(path: str | Path) -> tuple[Path, Path]:
    """An export is a folder (model.safetensors + config.yaml) or X.safetensors with X.yaml beside it."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".yaml")
    return path / EXPORT_WEIGHTS, path / EXPORT_CONFIG


def export_stamp(cfg: ExperimentConfig) -> dict[str, str]:
    """Safetensors metadata (strings only): the same stamp a checkpoint carries."""
    from genlab import __version__

    return {"format": str(CHECKPOINT_FORMAT), "version": __version__, "model": cfg.model.name}


def load_export(path: str | Path, device: str | torch.device = "cpu") -> GenlabModule:
    import yaml
    from safetensors import safe_open
    from safetensors.torch import load_model

    weights, config = export_paths(path)
    if not weights.is_file():
        raise GenlabError(f"{weights}: no exported weights here; write them with genlab.export(RUN, {path})")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            stamp = fh.metadata() or {}
    except Exception as exc:  # not a safetensors file at all
        raise GenlabError(f"{weights}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    check_stamp(stamp if "format" in stamp else None, weights)
    if not config.is_file():
        raise GenlabError(f"{config}: the config that goes with {weights.name} is missing; export the run again")
    cfg = build_config(yaml.safe_load(config.read_text()) or {}, str(config))
    check_model(stamp.get("model"), cfg, weights, config)
    module = build_with_weights(cfg, lambda m: load_model(m, str(weights), strict=True, device="cpu"),
                                weights, config)
    return module.to(device).eval()
