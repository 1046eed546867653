"""Reading trained weights back as plain models: checkpoints, exports, and their checks.

Nothing here needs Lightning: a checkpoint is a torch file whose `state_dict` holds the
LightningModule's tensors (the model's under `net.`), whose `genlab` stamp says which model
and format it is, and whose hyper-parameters carry the config. The same checks apply to every
way in (a run, a lone .ckpt, a safetensors export): another tool's file, another format,
another model, weights that do not fit each give one line naming the file. Checkpoints are read
weights only (`genlab.safe_load`): one that holds Python objects is refused, and nothing in it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from genlab.config import ExperimentConfig, build_config
from genlab.errors import GenlabError
from genlab.safe_load import load_torch

# 1: the GAN's EMA generator as a separate `g_ema` AveragedModel; 2: inside the model
# (`net.ema_generator`). Format 1 is still read (see `upgrade_state_dict`).
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = ("1", "2")
MODEL_PREFIX = "net."
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.yaml"


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"checkpoint not found: {path}")
    ckpt = load_torch(path, "checkpoint")  # a foreign, damaged or code-carrying file: one line
    check_stamp(ckpt.get("genlab") if isinstance(ckpt, dict) else None, path)
    return ckpt


def check_stamp(stamp: dict | None, path: Path) -> dict:
    """The `genlab` stamp of a checkpoint or an export: present, and of a format this version reads."""
    if not stamp:
        raise GenlabError(f"{path}: not a genlab checkpoint (no 'genlab' stamp); it was written by another tool")
    if str(stamp.get("format")) not in READABLE_FORMATS:
        raise GenlabError(f"{path}: checkpoint format {stamp.get('format')} (genlab {stamp.get('version')}) is not "
                          f"supported by this genlab (format {CHECKPOINT_FORMAT}); retrain or use that version")
    return stamp


def checkpoint_stamp(model_name: str) -> dict[str, Any]:
    from genlab import __version__

    return {"format": CHECKPOINT_FORMAT, "version": __version__, "model": model_name}


def check_model(saved_model: str | None, cfg: ExperimentConfig, path: Path, described_by: Path | str) -> None:
    if saved_model != cfg.model.name:
        raise GenlabError(f"{path}: checkpoint holds a {saved_model!r} model but {described_by} "
                          f"describes a {cfg.model.name!r} model")


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A format-1 training state dict in format 2: the EMA generator moves from `g_ema.module.*`
    into the model, its update count from `g_ema.n_averaged` to `ema_updates`."""
    if not any(k.startswith("g_ema.") for k in state):
        return state
    out = {}
    for key, value in state.items():
        if key.startswith("g_ema.module."):
            out[MODEL_PREFIX + "ema_generator." + key[len("g_ema.module."):]] = value
        elif key == "g_ema.n_averaged":
            out["ema_updates"] = value
        else:
            out[key] = value
    return out


def model_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The plain model's tensors from a training state dict (or a plain one, unchanged)."""
    state = upgrade_state_dict(state)
    if not any(k.startswith(MODEL_PREFIX) for k in state):
        return state
    return {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def fill(model: nn.Module, load: Callable[[nn.Module], object], path: Path, described_by: Path | str) -> nn.Module:
    """`load(model)`; a shape or key mismatch becomes one line naming both files."""
    try:
        load(model)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GenlabError(f"{path}: weights do not fit the model in {described_by} ({first})") from None
    return model


def model_from_checkpoint(ckpt: dict, cfg: ExperimentConfig, path: Path, described_by: Path | str) -> nn.Module:
    """The plain model `cfg` describes, with the checkpoint's weights, in eval mode on the CPU."""
    from genlab.models.registry import build_model

    check_model(ckpt["genlab"].get("model"), cfg, path, described_by)
    state = model_state(ckpt["state_dict"])
    return fill(build_model(cfg), lambda m: m.load_state_dict(state), path, described_by).eval()


def checkpoint_config(ckpt: dict, path: Path) -> ExperimentConfig | None:
    """The config a checkpoint carries in its hyper-parameters, if any."""
    saved = ckpt.get("hyper_parameters", {}).get("config")
    return build_config(saved, str(path)) if saved is not None else None


def load_checkpoint_file(path: str | Path) -> tuple[nn.Module, ExperimentConfig]:
    """A checkpoint file on its own: its config travels inside it (the hyper-parameters)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt, path)
    if cfg is None:
        raise GenlabError(f"{path}: checkpoint carries no config; load its run directory instead")
    return model_from_checkpoint(ckpt, cfg, path, f"{path} (its own config)"), cfg


# --- exports: safetensors weights of the plain model with the config beside them ------------------
def export_paths(path: str | Path) -> tuple[Path, Path]:
    """An export is a folder (model.safetensors + config.yaml) or X.safetensors with X.yaml beside it."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".yaml")
    return path / EXPORT_WEIGHTS, path / EXPORT_CONFIG


def export_stamp(cfg: ExperimentConfig) -> dict[str, str]:
    """Safetensors metadata (strings only): the same stamp a checkpoint carries."""
    return {k: str(v) for k, v in checkpoint_stamp(cfg.model.name).items()}


def load_export(path: str | Path) -> tuple[nn.Module, ExperimentConfig]:
    import yaml
    from safetensors import safe_open
    from safetensors.torch import load_file

    from genlab.models.registry import build_model

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
    state = model_state(load_file(str(weights), device="cpu"))  # format-1 exports held the training module
    model = fill(build_model(cfg), lambda m: m.load_state_dict(state), weights, config)
    return model.eval(), cfg
