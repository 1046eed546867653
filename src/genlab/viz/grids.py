"""Image grids: the PNG writer (`save_grid`, defined in `genlab.io` so that `genlab.data` can write
previews without importing `genlab.viz`) and the layouts of image rows."""

from __future__ import annotations

import torch

from genlab.io import save_grid as save_grid  # re-exported: the grid writer's usual import path


def originals_over_reconstructions(x: torch.Tensor, recon: torch.Tensor, per_row: int = 10) -> torch.Tensor:
    """Interleave rows: a row of originals, then the row of their reconstructions, and so on."""
    per_row = max(1, min(per_row, x.shape[0]))  # a tiny validation split gives fewer than one row
    n = (x.shape[0] // per_row) * per_row
    x, recon = x[:n].cpu(), recon[:n].cpu()
    rows = [t for i in range(0, n, per_row) for t in (x[i : i + per_row], recon[i : i + per_row])]
    return torch.cat(rows)
