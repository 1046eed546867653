"""`genlab vqvae-sweep CONFIG`: one VQ-VAE per codebook size, then a side-by-side comparison.

    <runs_dir>/<name>-<time>/K128/, K256/, K512/   ordinary runs (resumable with `genlab train --resume`)
    <runs_dir>/<name>-<time>/comparison.png        10 held-out originals, then one row of reconstructions per K
    <runs_dir>/<name>-<time>/grid_K<K>.png          originals above reconstructions, 50 images, per K
    <runs_dir>/<name>-<time>/comparison.md|json     held-out PSNR, codebook usage, perplexity, compression
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from genlab.config import ExperimentConfig, build_config
from genlab.data.registry import build_dataset
from genlab.errors import GenlabError
from genlab.io import atomic_write_json, atomic_write_text
from genlab.models.vqvae import perplexity_of, psnr
from genlab.viz.grids import originals_over_reconstructions, save_grid


@torch.no_grad()
def held_out_quality(net, images: torch.Tensor, num_codes: int, batch_size: int = 200) -> dict[str, float]:
    """Mean per-image PSNR, the fraction of codes used and the code perplexity on `images`."""
    net.eval()
    scores, counts = [], torch.zeros(num_codes, dtype=torch.long)
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        idx = net.codes(x)
        counts += torch.bincount(idx.flatten(), minlength=num_codes)
        scores.append(psnr(x, net.decode_indices(idx)))
    return {"psnr": float(torch.cat(scores).mean()), "usage": float((counts > 0).float().mean()),
            "perplexity": float(perplexity_of(counts))}


def sweep_codes(cfg: ExperimentConfig, codes: list[int] | None = None, console=None) -> Path:
    from genlab.train.runner import train
    from genlab.train.vqvae_module import run_compression

    if cfg.model.name != "vqvae":
        raise GenlabError(f"vqvae-sweep needs a VQ-VAE config (model.name: vqvae), got {cfg.model.name!r}")
    codes = codes or cfg.model.sweep_codes
    root = Path(cfg.output.runs_dir) / (cfg.output.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    root.mkdir(parents=True, exist_ok=True)
    runs = {}
    for k in codes:
        data = cfg.to_dict()
        data["model"]["num_codes"] = k
        data["output"].update(runs_dir=str(root), run_name=f"K{k}")
        run_cfg = build_config(data, f"sweep K={k}")
        if console is not None:
            console.print(f"[bold]K = {k}[/] -> {root / f'K{k}'}")
        runs[k] = train(run_cfg)
    return compare_runs(root, runs, run_compression)


def compare_runs(root: Path, runs: dict[int, Any], run_compression) -> Path:
    first_cfg = runs[next(iter(runs))].config()
    val = build_dataset(first_cfg.data, "val", first_cfg.trainer.seed)
    images = torch.stack([val[i][0] for i in range(len(val))])
    pick = images[torch.linspace(0, len(images) - 1, min(50, len(images))).long()]
    rows, table = [pick[:10]], []
    for k, run in runs.items():
        net = run.load_model()
        quality = held_out_quality(net, images, k)
        recon = net.reconstruct(pick)
        rows.append(recon[:10])
        save_grid(originals_over_reconstructions(pick, recon, per_row=10), root / f"grid_K{k}.png", nrow=10)
        table.append({"K": k, "run": str(run.path), **quality, **run_compression(run.config())})
    save_grid(torch.cat(rows), root / "comparison.png", nrow=10)
    atomic_write_json(root / "comparison.json", {"held_out_images": len(images), "rows": table})
    lines = [f"Held-out PSNR (mean per image), codebook usage and perplexity on {len(images)} val images; "
             "comparison.png: originals, then one row per K.", "",
             "| K | PSNR (dB) | codes in use | perplexity | bits per image | compression |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['K']} | {r['psnr']:.2f} | {r['usage']:.1%} | {r['perplexity']:.1f} | {r['code_bits']:.0f} | "
              f"{r['ratio']:.1f}x |" for r in table]
    atomic_write_text(root / "comparison.md", "\n".join(lines) + "\n")
    return root
