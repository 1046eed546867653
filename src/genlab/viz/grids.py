"""Image grids, written atomically, through torchvision."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from genlab.io import atomic_path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, padding: int = 2) -> Path:
    """Save images in [0, 1] (NCHW) as one PNG grid with `nrow` images per row."""
    path = Path(path)
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path


def originals_over_reconstructions(x: torch.Tensor, recon: torch.Tensor, per_row: int = 10) -> torch.Tensor:
    """Interleave rows: a row of originals, then the row of their reconstructions, and so on."""
    per_row = max(1, min(per_row, x.shape[0]))  # a tiny validation split gives fewer than one row
    n = (x.shape[0] // per_row) * per_row
    x, recon = x[:n].cpu(), recon[:n].cpu()
    rows = [t for i in range(0, n, per_row) for t in (x[i : i + per_row], recon[i : i + per_row])]
    return torch.cat(rows)
