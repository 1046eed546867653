"""VAE training throughput: genlab's Lightning loop against a minimal hand-written PyTorch loop with the
same network, data and batch size, measured in the same process, interleaved to share the machine's noise.

    .venv/bin/python benchmarks/vae_throughput.py [--images 3840] [--repeats 3] [--device cpu]
                                                 [--precision 32-true|bf16-mixed] [--channels-last]

Prints a markdown table; the ratio is genlab images/s over hand-written images/s (target >= 0.95).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from genlab.config import load_config
from genlab.data import registry
from genlab.models.vae import ConvVAE
from genlab.runs import Run
from genlab.train.datamodule import GenlabDataModule
from genlab.train.registry import build_module
from genlab.train.runner import build_trainer


def make_data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 64, 64, generator=g) > 0.9).float()
    return TensorDataset(x, torch.zeros(n))


def hand_written(data: TensorDataset, batch: int, device: str, bf16: bool, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = ConvVAE(1, 64, 128).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters())
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    seen, t0 = 0, time.perf_counter()
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model.elbo(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += x.shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


class _Timer(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        self.t0, self.seen = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        # stop the clock at the last training batch: Lightning runs validation before
        # on_train_epoch_end, and the hand-written loop has none
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seen += batch[0].shape[0]
        self.rate = self.seen / (time.perf_counter() - self.t0)


def genlab_loop(n: int, batch: int, device: str, precision: str, channels_last: bool) -> float:
    registry.BUILDERS["dsprites"] = lambda cfg, split, seed: make_data(n if split == "train" else batch)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("vae-dsprites", [
            f"data.batch_size={batch}", "trainer.max_epochs=1", "trainer.progress_bar=false",
            f"trainer.accelerator={device}", f"trainer.precision={precision}", "trainer.limit_val_batches=1",
            f"output.runs_dir={tmp}", "output.grid_every_n_epochs=1000"])
        run = Run.create(cfg)
        timer = _Timer()
        trainer = build_trainer(cfg, run, [timer])
        module = build_module(cfg)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        trainer.fit(module, datamodule=GenlabDataModule(cfg.data, seed=0))
        return timer.rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=3840)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = args.precision.startswith("bf16")
    data = make_data(args.images)
    hand_written(make_data(args.batch * 2), args.batch, args.device, bf16, args.channels_last)  # warm-up
    ours, theirs = [], []
    for _ in range(args.repeats):
        theirs.append(hand_written(data, args.batch, args.device, bf16, args.channels_last))
        ours.append(genlab_loop(args.images, args.batch, args.device, args.precision, args.channels_last))
    ratios = [o / t for o, t in zip(ours, theirs)]
    card = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"\ncommand: {' '.join(sys.argv)}\n")
    print("| device | precision | channels_last | hand-written img/s | genlab img/s | ratio (median of "
          f"{args.repeats}) |")
    print("|---|---|---|---|---|---|")
    print(f"| {card} | {args.precision} | {args.channels_last} | {statistics.median(theirs):.0f} | "
          f"{statistics.median(ours):.0f} | {statistics.median(ratios):.3f} |")
    print("per-repeat ratios:", ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
