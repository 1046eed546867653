"""The notebook API: `genlab.load(...)` gives back a trained model, `genlab.export(...)` writes it out.

    model = genlab.load("runs/vae-dsprites-quick-20250101-120000")
    x = model.generate(16, seed=0)          # images in [0, 1], NCHW (= model.sample(model.noise(16, g)))
    mean, logvar = model.encode(x)          # where the model has an encoder
    log_px = model.log_px(x)                # nats per image (importance sampling), VAE-like models

`load` accepts a run directory, an export (folder or X.safetensors) or a single .ckpt file; every
path goes through `genlab.checkpoints`, so the same checks (another tool, another checkpoint
format, another model, weights that do not fit) give the same one-line `GenlabError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.config import ExperimentConfig, dump_config
from genlab.defaults import LOGLIK
from genlab.errors import GenlabError
from genlab.io import atomic_path, atomic_write_text


class TrainedModel(nn.Module):
    """A trained model: the run's plain `nn.Module` (`.net`, keeping `genlab.models.contract`)
    with its config. Attributes of `.net` (`noise`, `sample`, `generate`, `encode`, `decode`,
    `reconstruct`, `latent_dim`, ...) are reachable directly, so a method exists here exactly
    when the model has it, and takes and gives images in [0, 1] for every model."""

    def __init__(self, net: nn.Module, config: ExperimentConfig, source: Path) -> None:
        super().__init__()
        self.net = net
        self.config = config
        self.source = source

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules
        except AttributeError:
            pass
        net = super().__getattr__("net")
        if name.startswith("_") or not hasattr(net, name):
            raise AttributeError(f"a {type(net).__name__} ({self.config.model.name}) has no {name!r}")
        return getattr(net, name)

    def __repr__(self) -> str:
        return f"TrainedModel({self.name}, from {self.source}, on {self.device})"

    def log_px(self, x: torch.Tensor, samples: int = LOGLIK["samples"], seed: int = LOGLIK["seed"]) -> torch.Tensor:
        """log p(x) in nats per image, by importance sampling (`samples`
        draws per image; the mode-centred proposal, the default of `genlab.eval.importance`). For
        standard errors, convergence flags and the other estimators see `genlab evaluate --loglik`."""
        from genlab.eval.importance import importance_sampling

        if not all(hasattr(self.net, a) for a in ("encode", "log_prior", "log_likelihood")):
            raise GenlabError(f"{self.source}: a {self.name} model has no likelihood to estimate "
                              "(it needs an encoder, a prior and p(x|z), like the VAE)")
        estimate = importance_sampling(self.net, x.to(self.device), n_samples=samples, seed=seed)
        return torch.as_tensor(estimate.log_px)


def load(path: str | Path, device: str | torch.device = "cpu", which: str = "best") -> TrainedModel:
    """The trained model in `path` (a run directory, an export folder, X.safetensors, or a .ckpt),
    in eval mode on `device`. `which` picks the run's best or last checkpoint. Lightning is not
    imported."""
    from genlab import checkpoints
    from genlab.runs import Run

    path = Path(path)
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        run = Run.open(path)
        net, cfg = run.load_model(which), run.config()
    elif path.suffix == ".safetensors" or (path / checkpoints.EXPORT_WEIGHTS).is_file():
        net, cfg = checkpoints.load_export(path)
    elif path.is_file():
        net, cfg = checkpoints.load_checkpoint_file(path)
    elif path.exists():
        raise GenlabError(f"{path}: not a genlab run directory or export (no config.yaml with checkpoints/, "
                          f"no {checkpoints.EXPORT_WEIGHTS}); pass the folder `genlab train` printed")
    else:
        raise GenlabError(f"{path}: no such run directory, export or checkpoint")
    return TrainedModel(net, cfg, path).to(device).eval()


def export(run_dir: str | Path, path: str | Path, which: str = "best") -> Path:
    """Write the run's model weights as safetensors with its config beside them: `path` is a folder
    (model.safetensors + config.yaml) or X.safetensors (with X.yaml). Returns the weights file."""
    from safetensors.torch import save_model

    from genlab import checkpoints
    from genlab.runs import Run

    run = Run.open(run_dir)
    net, cfg = run.load_model(which), run.config()
    weights, config = checkpoints.export_paths(path)
    with atomic_path(weights) as tmp:
        save_model(net, str(tmp), metadata=checkpoints.export_stamp(cfg))
    atomic_write_text(config, dump_config(cfg))
    return weights
