"""Why the study's LSGAN drew noise (issue 20): a plain torch loop on genlab's DCGAN networks and
losses, on real Bitmoji faces (../shared/data/bitmoji, the 2,371 training images left after holding
out 500), one thread, a fixed number of steps per variant. Per step it records the discriminator's
mean outputs on the real and generated batch (D step), its output on the same generated batch
after the D step (G step), and both losses; at the end a 8x8 grid of samples and the pixel
diversity of 500 samples against the 500 held-out faces (`genlab.eval.pixel_scores`, 32x32).

    BITMOJI=../shared/data/bitmoji OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lsgan_batchnorm.py ls:ls:64:60:bn:32 \
        lsnobn:ls:64:60:nobn:32          # tag:loss:width:steps:variant:image size

Losses: bce (DCGAN), ls (LSGAN a=0, b=c=1), ls101 (a=-1, b=1, c=0). Variants: bn (genlab's networks
as they were), nobn (D without BatchNorm), sigmoid (LS on sigmoid(D)), dlr (D lr / 4), joint (real
and generated images through D in one batch, in both steps). Adam 2e-4 (0.2, 0.999), batch 128.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from genlab.data.images import image_dataset
from genlab.eval.pixel_scores import diversity
from genlab.models.dcgan import DCGAN, discriminator_loss, generator_loss

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BITMOJI", ROOT.parent / "shared" / "data" / "bitmoji"))  # a worktree: set BITMOJI
OUT = ROOT / "benchmarks" / "results" / "lsgan"


def load(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images in [-1, 1] and held-out images in [0, 1], at `size` pixels."""
    def split(name: str) -> torch.Tensor:
        ds = image_dataset("bitmoji", DATA, name, image_size=64, val_fraction=0.05, holdout=500, progress=False)
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        return F.interpolate(x, size=size, mode="area") if size != 64 else x
    return split("train") * 2 - 1, split("holdout")


def losses(kind: str, dr: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    if kind == "ls101":
        return 0.5 * ((dr - 1) ** 2).mean() + 0.5 * ((df + 1) ** 2).mean()
    return discriminator_loss(dr, df, kind)


def run(tag: str, kind: str, width: int, steps: int, variant: str, size: int, beta1: float = 0.2,
        lr: float = 2e-4, bs: int = 128, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    x_all, hold = load(size)
    net = DCGAN(100, 3, size, width, width, d_batch_norm=variant != "nobn")
    G, D = net.generator, net.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr / 4 if variant == "dlr" else lr, betas=(beta1, 0.999))
    out = (lambda t: torch.sigmoid(t)) if variant == "sigmoid" else (lambda t: t)
    trace, t0, step = [], time.time(), 0
    while step < steps:
        perm = torch.randperm(len(x_all))
        for i in range(0, len(perm) - bs + 1, bs):
            if step >= steps:
                break
            x, z = x_all[perm[i:i + bs]], torch.randn(bs, 100)
            fake = G(z)
            if variant == "joint":
                both = D(torch.cat([x, fake.detach()]))
                dr, df = out(both[:bs]), out(both[bs:])
            else:
                dr, df = out(D(x)), out(D(fake.detach()))
            d_loss = losses(kind, dr, df)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            D.requires_grad_(False)
            dg = out(D(torch.cat([x, fake]))[bs:] if variant == "joint" else D(fake))
            g_loss = 0.5 * (dg ** 2).mean() if kind == "ls101" else generator_loss(dg, "ls" if kind == "ls" else "bce")
            D.requires_grad_(True)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            trace.append([float(v.detach().mean()) for v in (dr, df, dg, d_loss, g_loss, (dg - df).abs())])
            step += 1
    G.eval()
    with torch.no_grad():
        samples = (G(torch.randn(500, 100, generator=torch.Generator().manual_seed(1))) + 1) / 2
    OUT.mkdir(parents=True, exist_ok=True)
    save_image(samples[:64].clamp(0, 1), OUT / f"{tag}.png", nrow=8)
    late = trace[len(trace) // 2:]
    span = lambda k: [round(min(t[k] for t in late), 2), round(max(t[k] for t in late), 2)]  # noqa: E731
    result = {"tag": tag, "loss": kind, "variant": variant, "width": width, "size": size, "steps": step,
              "g_loss_2nd_half": span(4), "d_real_2nd_half": span(0), "d_fake_2nd_half": span(1),
              "d_fake_jump_per_d_step": round(sum(t[5] for t in late) / len(late), 3),
              "pixel_diversity": round(diversity(samples.clamp(0, 1), hold), 3),
              "s_per_step": round((time.time() - t0) / step, 2)}
    (OUT / f"{tag}.trace.json").write_text(json.dumps(trace))
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    if not DATA.is_dir():
        sys.exit(f"skipped: no Bitmoji images at {DATA}")
    for spec in sys.argv[1:]:
        tag, kind, width, steps, variant, size = spec.split(":")
        print(json.dumps(run(tag, kind, int(width), int(steps), variant, int(size))), flush=True)
