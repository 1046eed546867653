"""A run's LightningModule with its trained weights, for code that trains further (sweeps,
benchmarks). Everything else loads the plain model with `Run.load_model` (`genlab.runs`)."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.checkpoints import check_model, checkpoint_config, fill, read_checkpoint
from genlab.runs import Run
from genlab.train.base import GenlabModule
from genlab.train.registry import build_module


def load_module(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> GenlabModule:
    """The LightningModule of a run with its trained weights, in eval mode on `device`."""
    run = Run.open(run_dir)
    cfg = run.config()
    path = run.checkpoint(which)
    ckpt = read_checkpoint(path)
    check_model(ckpt["genlab"].get("model"), cfg, path, run.config_path)
    cfg = checkpoint_config(ckpt, path) or cfg
    module = build_module(cfg)
    module.on_load_checkpoint(ckpt)  # format-1 checkpoints are upgraded here
    fill(module, lambda m: m.load_state_dict(ckpt["state_dict"]), path, run.config_path)
    return module.to(device).eval()
