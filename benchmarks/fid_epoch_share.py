"""Share of the per-epoch FID in a study-settings DCGAN epoch on this machine, before and after
issue 15's CPU work (issue 15, benchmark c).

Study settings: Bitmoji 64x64, 2,847 training images, batch 128 (23 steps an epoch), widths 64,
latent 100, FID of 1000 generated images against 1000 cached real statistics, 2048-d, batch 50.
"before" is the code at commit 10167ac (a git worktree), "after" this working tree; each side
runs in its own process, alternately, so the shared machine's load hits both alike. Each process
times `--steps` DCGAN training steps (the same hand-written step on both sides: the training code
is not what changed), the FID forward of generator samples through that side's
`features_from_tensors` on `--images` images, and that side's Fréchet distance + KID on 1000 x
2048-d features; the epoch is extrapolated from these (23 steps, 1000 images). Seeded random
Inception weights (the real file is absent; the cost does not depend on the values).

    git worktree add /tmp/before 10167ac   # once
    .venv/bin/python benchmarks/fid_epoch_share.py [--before /tmp/before] [--rounds 2] [--steps 3] [--images 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

STEPS_PER_EPOCH = 23   # ceil(2847 / 128)
FID_IMAGES = 1000

CHILD = r'''
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(2)
from genlab.eval import features as F
from genlab.eval.fid import Stats, fid_from_stats
from genlab.models.dcgan import DCGAN, discriminator_loss, generator_loss
steps, images = int(sys.argv[1]), int(sys.argv[2])

def clock(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c

torch.manual_seed(0)
net = DCGAN(100, 3, 64, 64, 64)
G, D = net.generator, net.discriminator
opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
x = torch.rand(128, 3, 64, 64) * 2 - 1
def step():
    fake = G(torch.randn(128, 100))
    d_loss = discriminator_loss(D(x), D(fake.detach()))
    opt_d.zero_grad(set_to_none=True); d_loss.backward(); opt_d.step()
    D.requires_grad_(False)
    g_loss = generator_loss(D(fake))
    D.requires_grad_(True)
    opt_g.zero_grad(set_to_none=True); g_loss.backward(); opt_g.step()
step()  # warm-up
train = clock(lambda: [step() for _ in range(steps)])

w = Path(tempfile.mkdtemp()) / F.FID_WEIGHTS_FILE
torch.save(F.he_state_dict(seed=0), w)
ex = F.inception_extractor(w, 2048, "cpu")
gen = torch.Generator().manual_seed(1)
def fakes():
    with torch.no_grad():
        for start in range(0, images, 50):
            yield net.sample(net.noise(min(50, images - start), gen)).float()
F.features_from_tensors(ex, fakes(), 50, limit=10)  # warm-up
feats = clock(lambda: F.features_from_tensors(ex, fakes(), 50))
rng = np.random.default_rng(0)
a, b = (np.maximum(rng.standard_normal((1000, 2048)), 0).astype(np.float32) for _ in range(2))
real = Stats.from_features(a)
dist = clock(lambda: fid_from_stats(real, Stats.from_features(b)))
print(json.dumps({"train": train, "features": feats, "distance": dist, "steps": steps, "images": images,
                  "extractor": ex.id}))
'''


def run_side(src: Path, steps: int, images: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(images)], env=env,
                          capture_output=True, text=True, cwd=str(src.parent))
    if proc.returncode:
        raise SystemExit(f"{src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="/tmp/before", help="worktree of commit 10167ac")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed DCGAN steps per process")
    parser.add_argument("--images", type=int, default=100, help="timed FID images per process")
    args = parser.parse_args()
    sides = {"before (10167ac)": Path(args.before) / "src", "after (this tree)": Path(__file__).resolve().parents[1] / "src"}
    results: dict[str, list[dict]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for name, src in sides.items():
            results[name].append(run_side(src, args.steps, args.images))
            print(f"round {r}: {name}: {results[name][-1]}", file=sys.stderr, flush=True)

    def best(rows: list[dict], key: str, clock: int) -> float:
        return min(row[key][clock] for row in rows)

    print(f"\n### (c) per-epoch FID share, study-settings DCGAN epoch ({STEPS_PER_EPOCH} steps of 128, "
          f"FID {FID_IMAGES} generated vs cached real, 2048-d), extrapolated from {args.steps} steps and "
          f"{args.images} images per process, best of {args.rounds} alternating rounds\n")
    print("| code | clock | train epoch (s) | FID per epoch (s) | of which features (s) | FID share of the epoch |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        for clock, label in ((0, "wall"), (1, "CPU")):
            train = best(rows, "train", clock) / args.steps * STEPS_PER_EPOCH
            feats = best(rows, "features", clock) / args.images * FID_IMAGES
            fid = feats + best(rows, "distance", clock)
            print(f"| {name} | {label} | {train:.0f} | {fid:.0f} | {feats:.0f} | {100 * fid / (train + fid):.0f}% |")
    print(f"\nextractors: {', '.join(rows[0]['extractor'] for rows in results.values())}")


if __name__ == "__main__":
    main()
