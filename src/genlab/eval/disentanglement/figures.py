"""The pictures of `genlab disentangle`: the latent-by-factor mutual-information heatmap, and one
traversal per latent labelled with the factor it captures most (a PNG grid, rows = latents, and
an animated GIF, all latents moving at once), under RUN/eval/disentanglement/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from genlab.eval.disentanglement.evaluate import captures
from genlab.eval.disentanglement.ground_truth import GroundTruth
from genlab.io import atomic_path
from genlab.viz.traverse import traverse

STEPS = 10            # images per traversal
QUANTILES = (0.02, 0.98)  # each latent is moved over this range of its codes (the posterior means)
RANGE_POINTS = 1000   # random images whose codes give those ranges
REFERENCE = (1, 5, 0, 16, 16)  # the base image: an ellipse, largest, unrotated, centred
LABEL_W = 130         # pixels of label beside each PNG row
GIF_MS = 120          # per frame


def mi_heatmap(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mi = np.asarray(result["latent_factor_mi"]["normalised"])
    names = result["factors"]["names"]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 0.4 * len(mi) + 1.5))
    im = ax.imshow(mi, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, k), v in np.ndenumerate(mi):
        ax.text(k, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(mi)), [f"z{i}" for i in range(len(mi))])
    ax.set_xlabel("factor")
    ax.set_ylabel("latent")
    ax.set_title(f"I(latent; factor) / H(factor)   MIG {result['mig']:.3f}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


@torch.no_grad()
def traversal_images(model: Any, data: GroundTruth, result: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
    """Images (D, STEPS, 1, H, W) moving each latent of the reference image's code over its range."""
    from genlab.eval.disentanglement.evaluate import representation_of
    from genlab.models.contract import device_of

    represent = representation_of(model)
    ref = np.array([REFERENCE[:data.num_factors]], dtype=np.int64)
    z0 = torch.from_numpy(represent(data.observe(ref))[0]).float()
    rng = np.random.default_rng(0)
    codes = represent(data.observe(data.sample_factors(RANGE_POINTS, rng)))
    lo, hi = np.quantile(codes, QUANTILES[0], axis=0), np.quantile(codes, QUANTILES[1], axis=0)
    rows = []
    for i in range(len(z0)):
        z = traverse(z0, torch.eye(len(z0))[i:i + 1], torch.linspace(float(lo[i]), float(hi[i]), STEPS))
        rows.append(model.sample(z.to(device_of(model))).float().cpu().clamp(0, 1))
    return torch.stack(rows), np.stack([lo, hi], axis=1)


def labels(result: dict[str, Any]) -> list[str]:
    return [f"z{i}: {name} ({v:.2f})" for i, (name, v) in enumerate(captures(result))]


def to_pil(grid: torch.Tensor) -> Image.Image:
    return Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).convert("RGB")


def traversal_png(images: torch.Tensor, names: list[str], path: Path) -> Path:
    d, steps = images.shape[:2]
    grid = to_pil(make_grid(images.flatten(0, 1), nrow=steps, padding=2, pad_value=1.0))
    tile = (grid.height - 2) // d
    page = Image.new("RGB", (grid.width + LABEL_W, grid.height), "white")
    page.paste(grid, (LABEL_W, 0))
    draw = ImageDraw.Draw(page)
    for i, text in enumerate(names):
        draw.text((4, i * tile + tile // 2 - 5), text, fill="black")
    with atomic_path(path) as tmp:
        page.save(tmp, format="PNG")
    return path


def traversal_gif(images: torch.Tensor, names: list[str], path: Path, per_row: int = 5) -> Path:
    d, steps = images.shape[:2]
    frames = []
    order = list(range(steps)) + list(range(steps - 2, 0, -1))  # there and back
    for t in order:
        grid = to_pil(make_grid(images[:, t], nrow=min(per_row, d), padding=14, pad_value=1.0))
        draw = ImageDraw.Draw(grid)
        # where in the traversal this frame is: a bar along the bottom edge (frames always differ)
        draw.rectangle((0, grid.height - 4, round((grid.width - 1) * t / max(steps - 1, 1)), grid.height - 1),
                       fill=(200, 60, 60))
        cols = min(per_row, d)
        cell_w, cell_h = (grid.width - 14) // cols, (grid.height - 14) // ((d + cols - 1) // cols)
        for i, text in enumerate(names):
            r, c = divmod(i, cols)
            draw.text((c * cell_w + 14, r * cell_h + 1), text.split(" (")[0], fill="black")
        frames.append(grid)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=GIF_MS, loop=0)
    return path


def write_figures(model: Any, result: dict[str, Any], data: GroundTruth, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images, ranges = traversal_images(model, data, result)
    names = labels(result)
    result["traversal"] = {"reference_factors": list(REFERENCE[:data.num_factors]), "steps": STEPS,
                           "range_quantiles": list(QUANTILES), "ranges": ranges.tolist(), "labels": names}
    return {"mi_heatmap": mi_heatmap(result, folder / "mi_heatmap.png"),
            "traversals_png": traversal_png(images, names, folder / "traversals.png"),
            "traversals_gif": traversal_gif(images, names, folder / "traversals.gif")}
