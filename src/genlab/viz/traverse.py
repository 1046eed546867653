"""Latent traversals, spherical interpolations and (BiGAN) reconstructions of a trained run.

`genlab traverse RUN` writes, under RUN/plots/traverse/:
- coords.png:   row r sets latent coordinate dims[r] of one base sample to -span..span (10 steps);
- pca.png:      the same along the principal directions of the generator's first layer (the
                left singular vectors of its weight seen as a latent_dim x rest matrix: the
                directions of z that move the first feature map most), largest first;
- slerp.png:    spherical interpolations between pairs of samples, one pair per row;
- recon.png:    (models with an encoder, e.g. BiGAN) rows of real x above rows of G(E(x)), with
                the mean reconstruction error against a random-pair baseline (as in the BiGAN
                paper) in RUN/eval/reconstruction.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch

from genlab.defaults import TRAVERSE, TRAVERSE_MODES
from genlab.errors import GenlabError
from genlab.io import atomic_write_json
from genlab.runs import Run
from genlab.viz.grids import originals_over_reconstructions, save_grid


# --- directions and paths in latent space --------------------------------------------------------
def coordinate_directions(latent_dim: int, dims: Sequence[int]) -> torch.Tensor:
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise GenlabError(f"--dims {bad[0]} is outside the latent space (0..{latent_dim - 1})")
    return torch.eye(latent_dim)[list(dims)]


def principal_directions(generator: torch.nn.Module, k: int) -> torch.Tensor:
    """(k, latent_dim) orthonormal directions of z, ordered by the first layer's singular values."""
    layer = getattr(generator, "first_layer", None)
    if layer is None:
        raise GenlabError("principal directions need a generator with a `first_layer` (the GANs); "
                          "use --mode coords for this model")
    w = layer.weight.detach().float()
    # ConvTranspose2d weights are (in=latent, out, kh, kw); Linear weights are (out, in=latent).
    w = w.flatten(1) if isinstance(layer, torch.nn.ConvTranspose2d) else w.t()
    u, _, _ = torch.linalg.svd(w, full_matrices=False)
    return u[:, :k].t().contiguous()


def traverse(z0: torch.Tensor, directions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Latents (len(directions) * len(values), D): for each unit direction u, z0 with its component
    along u set to each value (for a coordinate axis: that coordinate replaced)."""
    u = directions / directions.norm(dim=1, keepdim=True)
    base = z0 - (u @ z0)[:, None] * u  # z0 without its component along each u
    return (base[:, None, :] + values[None, :, None] * u[:, None, :]).reshape(-1, z0.shape[0])


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b at fractions t: (N, D), (N, D), (T,) -> (N*T, D).
    Norms are interpolated linearly; nearly parallel pairs fall back to linear interpolation."""
    an, bn = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    cos = ((a / an) * (b / bn)).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)[:, None, :]  # (N, 1, 1)
    t = t[None, :, None]
    so = torch.sin(omega)
    lerp = (1 - t) * a[:, None] + t * b[:, None]
    spherical = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / so.clamp_min(1e-7)
    out = torch.where(so > 1e-4, spherical, lerp)
    return out.reshape(-1, a.shape[1])


# --- reconstructions ---------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_error(model: Any, x: torch.Tensor, seed: int = 0, batch_size: int = 100) -> dict[str, Any]:
    """Mean per-pixel squared error of G(E(x)) against x, and of a random other real image against
    x (the baseline a reconstruction must beat), with standard errors over images."""
    recon = torch.cat([model.reconstruct(x[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)])
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    perm = (torch.arange(n) + torch.randint(1, n, (n,), generator=gen)) % n  # never the image itself
    err = (recon - x.cpu()).pow(2).flatten(1).mean(1)
    base = (x[perm].cpu() - x.cpu()).pow(2).flatten(1).mean(1)

    def mean_se(v: torch.Tensor) -> tuple[float, float]:
        return float(v.mean()), float(v.std() / math.sqrt(len(v)))

    (m, se), (bm, bse) = mean_se(err), mean_se(base)
    return {"n_images": n, "metric": "mean squared error per pixel, images in [0, 1]",
            "reconstruction_mse": m, "reconstruction_se": se, "random_pair_mse": bm, "random_pair_se": bse,
            "ratio_to_random_pair": m / bm if bm > 0 else None, "reconstructions": recon}


# --- the command ---------------------------------------------------------------------------------------
def _real_images(cfg: Any, n: int, seed: int) -> torch.Tensor:
    from genlab.data.registry import build_dataset

    data = build_dataset(cfg.data, "val", cfg.trainer.seed)
    if len(data) < 2:
        raise GenlabError(f"the validation split of {cfg.data.name} has {len(data)} images; reconstructions need 2+")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    return torch.stack([data[i][0] for i in idx])


@torch.no_grad()
def traverse_run(run_dir: str | Path, out: str | Path | None = None, mode: str = TRAVERSE["mode"],
                 rows: int = TRAVERSE["rows"], steps: int = TRAVERSE["steps"], span: float = TRAVERSE["span"],
                 dims: Sequence[int] | None = None, seed: int = TRAVERSE["seed"], n_recon: int = TRAVERSE["n_recon"],
                 which: str = TRAVERSE["which"], device: str = "cpu") -> dict[str, Path]:
    """Write the traversal grids of a run; returns {name: path}."""
    if mode not in TRAVERSE_MODES:
        raise GenlabError(f"--mode {mode!r}: choose {', '.join(TRAVERSE_MODES)}")
    if steps < 2 or rows < 1:
        raise GenlabError("--steps must be at least 2 and --rows at least 1")
    run = Run.open(run_dir)
    cfg = run.config()
    model = run.load_model(which, device)
    out = Path(out) if out else run.plots / "traverse"
    gen = torch.Generator().manual_seed(seed)
    z = model.noise(2 * rows + 1, gen).cpu()
    latent_dim = z.shape[1]
    values = torch.linspace(-span, span, steps)

    def render(latents: torch.Tensor, name: str) -> Path:
        images = torch.cat([model.sample(b.to(device)).cpu() for b in latents.split(100)])
        return save_grid(images, out / f"{name}.png", nrow=steps)

    written: dict[str, Path] = {}
    if mode in ("all", "coords"):
        chosen = list(dims) if dims else list(range(min(rows, latent_dim)))
        written["coords"] = render(traverse(z[0], coordinate_directions(latent_dim, chosen), values), "coords")
    generator = getattr(model, "sampling_generator", None)
    if mode == "pca" or (mode == "all" and getattr(generator, "first_layer", None) is not None):
        directions = principal_directions(generator, min(rows, latent_dim))
        written["pca"] = render(traverse(z[0], directions, values), "pca")
    if mode in ("all", "slerp"):
        written["slerp"] = render(slerp(z[1:rows + 1], z[rows + 1:], torch.linspace(0, 1, steps)), "slerp")
    if mode == "recon" and not model.has_encoder:
        raise GenlabError(f"{run.path}: a {cfg.model.name} model has no encoder to reconstruct with")
    if mode in ("all", "recon") and model.has_encoder:
        x = _real_images(cfg, n_recon, seed).to(device)
        result = reconstruction_error(model, x, seed)
        recon = result.pop("reconstructions")
        per_row = 10
        shown = min(len(x) // per_row, 5) * per_row or len(x)
        grid = originals_over_reconstructions(x[:shown].cpu(), recon[:shown], per_row=min(per_row, shown))
        written["recon"] = save_grid(grid, out / "recon.png", nrow=min(per_row, shown))
        result.update(checkpoint=which, seed=seed)
        atomic_write_json(run.eval / "reconstruction.json", result)
        written["recon_json"] = run.eval / "reconstruction.json"
    return written
