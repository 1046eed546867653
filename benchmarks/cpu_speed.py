"""Training speed on this CPU, per model and setting (issue 20, point 1): float32 against bf16 autocast,
channels_last, torch.compile and the thread count, all measured in one process, alternating.

    .venv/bin/python benchmarks/cpu_speed.py [--models vae-64 vae-128 vqvae dcgan bigan] [--steps 6]
                                             [--repeats 2] [--no-compile] [--tiny]

Each row is the study's network, batch size and optimiser (the configs named in gpu_check.py), one
training step = forward + backward + Adam on synthetic smooth images (speed does not depend on
content), timed by gpu_check.py's hand-written loop (genlab's networks and losses, device-resident
batches, no Lightning). Prints a markdown table of images/s (median over repeats) and each setting's
ratio to float32 on all threads. Run it alone: on a shared 2-core machine the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from genlab.train.device_data import compiler_problem  # noqa: E402
from gpu_check import EXTRA, MODELS, Variant, fake_images, hand_written, make_cfg  # noqa: E402

SETTINGS = (  # (row label, variant, threads: None = torch's default, every core)
    ("fp32", Variant("fp32", "32-true"), None),
    ("fp32, 1 thread", Variant("fp32", "32-true"), 1),
    ("fp32 + channels_last", Variant("fp32+cl", "32-true", channels_last=True), None),
    ("bf16 autocast", Variant("bf16", "bf16-mixed"), None),
    ("bf16 + channels_last", Variant("bf16+cl", "bf16-mixed", channels_last=True), None),
    ("bf16 + channels_last + compile", Variant("bf16+cl+compile", "bf16-mixed", channels_last=True, compile=True), None),
)


def main(argv: list[str] | None = None) -> int:
    models = {m.key: m for m in (*MODELS, *EXTRA)}
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(models), choices=list(models))
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement (after 2 warm-up steps)")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats (compile rows: 1)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    p.add_argument("--tiny", action="store_true", help="small networks, 1 step (checks the script)")
    args = p.parse_args(argv)
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    settings = [s for s in SETTINGS if not (s[1].compile and (args.no_compile or compiler_problem("cpu")))]
    steps, warmup = (1, 1) if args.tiny else (args.steps, 2)
    print(f"CPU, torch {torch.__version__}, {threads} threads by default, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for key in args.models:
            model = models[key]
            results: dict[str, list[float]] = {label: [] for label, _, _ in settings}
            for r in range(args.repeats):
                for label, variant, n_threads in settings:
                    if variant.compile and r > 0:
                        continue  # compiling again costs minutes and measures the same kernels
                    torch._dynamo.reset()
                    cfg = make_cfg(model, variant, args.tiny, device, runs_dir, warmup + steps)
                    data = fake_images(cfg.data.batch_size * (warmup + steps), model.channels, model.size)
                    torch.set_num_threads(n_threads or threads)
                    try:
                        out = hand_written(cfg, data, variant, warmup, steps, device)
                    finally:
                        torch.set_num_threads(threads)
                    results[label].append(out["img_s"])
                    print(f"{key:8s} {label:32s} {out['img_s']:7.1f} img/s (warm-up {out['warmup_s']:.1f} s)",
                          flush=True)
            base = statistics.median(results["fp32"])
            for label, values in results.items():
                rows.append((key, cfg.data.batch_size, label, statistics.median(values), statistics.median(values) / base))
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| model | batch | setting | img/s | vs fp32 |")
    print("|---|---:|---|---:|---:|")
    for key, bs, label, img_s, ratio in rows:
        print(f"| {key} | {bs} | {label} | {img_s:.1f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
