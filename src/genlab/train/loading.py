"""Load a trained model back from a run directory or a checkpoint, with clear errors on mismatch."""

from __future__ import annotations

from pathlib import Path

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
    stamp = ckpt.get("genlab") if isinstance(ckpt, dict) else None
    if not stamp:
        raise GenlabError(f"{path}: not a genlab checkpoint (no 'genlab' stamp); it was written by another tool")
    if stamp.get("format") != CHECKPOINT_FORMAT:
        raise GenlabError(f"{path}: checkpoint format {stamp.get('format')} (genlab {stamp.get('version')}) is not "
                          f"supported by this genlab (format {CHECKPOINT_FORMAT}); retrain or use that version")
    return ckpt


def load_module(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu",
                cfg: ExperimentConfig | None = None) -> GenlabModule:
    """The LightningModule of a run with its trained weights, in eval mode on `device`."""
    run = Run.open(run_dir)
    cfg = cfg or run.config()
    path = run.checkpoint(which)
    ckpt = read_checkpoint(path)
    saved_model = ckpt["genlab"].get("model")
    if saved_model != cfg.model.name:
        raise GenlabError(f"{path}: checkpoint holds a {saved_model!r} model but {run.config_path} "
                          f"describes a {cfg.model.name!r} model")
    if "config" in ckpt.get("hyper_parameters", {}):
        cfg = build_config(ckpt["hyper_parameters"]["config"], str(path))
    module = build_module(cfg)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GenlabError(f"{path}: weights do not fit the model in {run.config_path} ({first})") from None
    return module.to(device).eval()
