"""The prepared device check (issue 15): one run that measures what the GPU path gives, on one device.

    .venv/bin/python benchmarks/gpu_check.py [--device auto|cuda|cpu] [--tiny] [--out benchmarks/results]
                                             [--budget-s 420] [--stem NAME]

benchmarks/gpu_check.sh runs it on a GPU machine with a hard 8-minute limit. It writes
`<out>/<stem>.json` and `<out>/<stem>.md` (stem: gpu_check_<device type>) after every row, atomically,
so a run stopped by its limit still leaves what it measured. Rows:

1. Training throughput (images/s) of the VAE at 64 px (dSprites settings) and 128 px (CelebA
   settings), the VQ-VAE (Tiny-ImageNet settings, K = 512) and the DCGAN (Bitmoji settings), each in
   fp32, bf16 autocast, bf16 + channels_last and bf16 + channels_last + torch.compile: genlab's
   Lightning loop (`build_module` + `build_trainer`, data.on_device=true) against a minimal hand-written
   PyTorch loop with the same network, optimiser, batch size and device-resident data, measured
   alternately in the same process. On a CPU, the channels_last and compile rows are GPU-only and are
   skipped with a line saying so (bf16 runs: it exercises the same code path).
2. FID of N vs N images (N = 1000 on a GPU), 2048-d (64-d in --tiny), with genlab's feature extractor API
   (`genlab.eval.features`): the Inception weights when found, else the seeded fallback network
   (the same architecture and FLOPs); cold (both sides) and with cached real statistics.
3. An estimate of `genlab study --profile full` from the measured per-step times and the full
   datasets' sizes (CelebA 162,770 train images, dSprites 737,280, Tiny-ImageNet 100,000,
   Bitmoji 4,084), training and per-epoch FID only.
4. The device's name.

Rows are ordered by importance; when the time budget (--budget-s) is spent the rest are skipped with
a line saying so. Ratios are genlab img/s over hand-written img/s of the same repeat.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import TensorDataset

from genlab.config import ExperimentConfig, load_config
from genlab.data import registry
from genlab.io import atomic_write_json, atomic_write_text
from genlab.models.registry import build_model
from genlab.runs import Run
from genlab.train.device_data import compiler_problem
from genlab.train.registry import build_module
from genlab.train.runner import build_trainer

RESULTS = Path(__file__).resolve().parent / "results"

# --- the study's settings (../shared/DESIGN.md; genlab/configs/study/full.yaml) ------------------------
CELEBA_TRAIN = 162_770      # the official train partition
CELEBA_VAL = 19_867
DSPRITES = 737_280
TINY_TRAIN = 100_000        # Tiny-ImageNet train/ (val/ holds 10,000 more)
TINY_VAL = 10_000
BITMOJI = 4_084


@dataclass(frozen=True)
class Model:
    key: str          # row name
    config: str       # bundled config with the study's settings
    overrides: tuple[str, ...]
    channels: int
    size: int
    tiny: tuple[str, ...]  # overrides of --tiny (small networks, small batches)


MODELS = (
    Model("vae-64", "vae-dsprites", (), 1, 64, ("model.channels=[8,16,16,16,16]", "data.batch_size=8")),
    Model("vae-128", "vae-celeba", (), 3, 128, ("model.channels=[8,16,16,16,16]", "data.batch_size=4")),
    Model("vqvae", "vqvae-tinyimagenet", ("model.num_codes=512", "model.init=data"), 3, 64,
          ("model.hidden=16", "model.res_hidden=8", "model.res_blocks=1", "model.code_dim=8",
           "model.num_codes=16", "data.batch_size=4")),
    Model("dcgan", "dcgan-bitmoji", ("model.fid.every_n_epochs=0", "model.fid.final_n=0"), 3, 64,
          ("model.g_width=8", "model.d_width=8", "data.batch_size=8")),
)
# extra per-step timings the study estimate needs (hand-written loop only, fp32 and the best variant)
EXTRA = (
    Model("bigan", "bigan-bitmoji", ("model.fid.every_n_epochs=0", "model.fid.final_n=0"), 3, 64,
          ("model.g_width=8", "model.d_width=8", "data.batch_size=8")),
)


@dataclass(frozen=True)
class Variant:
    key: str
    precision: str
    channels_last: bool = False
    compile: bool = False


VARIANTS = (Variant("fp32", "32-true"), Variant("bf16", "bf16-mixed"),
            Variant("bf16+channels_last", "bf16-mixed", channels_last=True),
            Variant("bf16+channels_last+compile", "bf16-mixed", channels_last=True, compile=True))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores, torch threads " \
                       f"{torch.get_num_threads()})"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


# --- configs and data ------------------------------------------------------------------------------------
def make_cfg(model: Model, variant: Variant, tiny: bool, device: torch.device, runs_dir: str,
             batches: int) -> ExperimentConfig:
    over = [*model.overrides, *(model.tiny if tiny else ()), "data.on_device=true", "data.num_workers=0",
            "data.cache=false", "data.subset=null", "data.root=null",
            f"trainer.precision={variant.precision}", f"trainer.channels_last={str(variant.channels_last).lower()}",
            f"trainer.compile={str(variant.compile).lower()}", f"trainer.accelerator={device.type}",
            "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=0",
            "trainer.progress_bar=false", "trainer.log_every_n_steps=50", "output.grid_every_n_epochs=100000",
            f"output.runs_dir={runs_dir}"]
    return load_config(model.config, over)


def fake_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [0, 1] (throughput does not depend on the content)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, max(1, size // 8), max(1, size // 8), generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


# --- the two loops -------------------------------------------------------------------------------------------
def hand_written(cfg: ExperimentConfig, data: torch.Tensor, variant: Variant, warmup: int, steps: int,
                 device: torch.device) -> dict[str, float]:
    """A minimal PyTorch loop: genlab's network (`build_model`), Adam, device-resident batches, autocast."""
    torch.manual_seed(0)
    net = build_model(cfg).to(device).train()
    bs = cfg.data.batch_size
    kind = cfg.model.name
    o = cfg.optimizer
    bf16 = variant.precision.startswith("bf16")
    if variant.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if kind in ("dcgan", "lsgan", "bigan"):
        G, D = net.generator, net.discriminator
        E = getattr(net, "encoder", None) if kind == "bigan" else None
        g_params = list(G.parameters()) + (list(E.parameters()) if E is not None else [])
        opt_g = torch.optim.Adam(g_params, lr=o.lr, betas=tuple(o.betas))
        opt_d = torch.optim.Adam(D.parameters(), lr=o.lr, betas=tuple(o.betas))
        if variant.compile:
            G, D = torch.compile(G), torch.compile(D)
            E = torch.compile(E) if E is not None else None
        bce = torch.nn.functional.binary_cross_entropy_with_logits

        def step(x: torch.Tensor) -> None:
            x = x * 2 - 1
            z = torch.randn(x.shape[0], cfg.model.latent_dim, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                fake = G(z)
                if E is not None:
                    code = E(x)
                    d_real, d_fake = D(x, code.detach()), D(fake.detach(), z)
                else:
                    d_real, d_fake = D(x), D(fake.detach())
                d_loss = bce(d_real.float(), torch.ones_like(d_real, dtype=torch.float32)) + \
                    bce(d_fake.float(), torch.zeros_like(d_fake, dtype=torch.float32))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            D.requires_grad_(False)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                if E is not None:
                    g_loss = bce(D(x, code).float(), torch.zeros_like(d_real, dtype=torch.float32)) + \
                        bce(D(fake, z).float(), torch.ones_like(d_fake, dtype=torch.float32))
                else:
                    out = D(fake).float()
                    g_loss = bce(out, torch.ones_like(out))
            D.requires_grad_(True)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
    else:
        opt = torch.optim.Adam(net.parameters(), lr=o.lr, betas=tuple(o.betas))
        if kind == "vae":
            beta = cfg.model.beta

            def loss_of(x: torch.Tensor) -> torch.Tensor:
                return net.elbo(x, beta=beta)["loss"]
        else:
            def loss_of(x: torch.Tensor) -> torch.Tensor:
                return net(x)["loss"]
        if variant.compile:
            if kind == "vae":
                loss_of = torch.compile(loss_of)
            else:  # the quantiser's codebook updates stay eager, like genlab's compile
                net.encoder.compile()
                net.decoder.compile()

        def step(x: torch.Tensor) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_of(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    g = torch.Generator(device="cpu").manual_seed(1)
    order = torch.randperm(len(data), generator=g).to(device)
    t_compile = time.perf_counter()
    timed, t0 = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
            warm_s = t0 - t_compile
        start = (i * bs) % max(1, len(data) - bs + 1)
        x = data.index_select(0, order[start:start + bs])
        if variant.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step(x)
        if i >= warmup:
            timed += x.shape[0]
    sync(device)
    dt = time.perf_counter() - t0
    return {"img_s": timed / dt, "step_s": dt / steps, "warmup_s": warm_s}


class _Timer(L.Callback):
    """Clock from the end of the warm-up batches to the end of the last training batch (Lightning runs
    validation and the end-of-epoch checkpoint after it; the hand-written loop has neither)."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.t_start = time.perf_counter()
        self.t0: float | None = None
        self.seen = 0
        self.t_end = 0.0
        self.warm_s = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.warmup - 1:
            sync(self.device)
            self.t0 = time.perf_counter()
            self.warm_s = self.t0 - self.t_start
        elif batch_idx >= self.warmup:
            self.seen += batch[0].shape[0]
            sync(self.device)
            self.t_end = time.perf_counter()


def genlab_loop(cfg: ExperimentConfig, data: torch.Tensor, warmup: int, steps: int,
                device: torch.device) -> dict[str, float]:
    """genlab's real training path: build_module (precision / channels_last / compile) + build_trainer,
    the datamodule with data.on_device=true over `data`."""
    from genlab.train.datamodule import GenlabDataModule

    targets = torch.zeros(len(data), dtype=torch.long)
    with registry.replaced(cfg.data.name, lambda c, split, seed: TensorDataset(data, targets)):
        L.seed_everything(0, verbose=False)
        module = build_module(cfg)
        dm = GenlabDataModule(cfg.data, seed=0)
        dm.setup("fit")
        run = Run.create(cfg)
        timer = _Timer(warmup, device)
        trainer = build_trainer(cfg, run, [timer])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(module, datamodule=dm)
    if timer.t0 is None or timer.seen == 0:
        raise RuntimeError("the genlab loop ran fewer batches than its warm-up")
    dt = timer.t_end - timer.t0
    return {"img_s": timer.seen / dt, "step_s": dt / (timer.seen / cfg.data.batch_size), "warmup_s": timer.warm_s}


# --- FID ---------------------------------------------------------------------------------------------------
def fid_timing(n: int, device: torch.device, size: int = 64, dims: int = 2048) -> dict[str, Any]:
    """FID of n generated (an untrained DCGAN generator on the device) vs n real-like images."""
    from genlab.eval.features import fallback_extractor, features_from_tensors, inception_extractor
    from genlab.eval.fid import Stats, fid_from_stats

    real = fake_images(n, 3, size, seed=3)
    try:
        ext = inception_extractor(dims=dims, device=device)
        which = "inception"
    except Exception as exc:  # noqa: BLE001 - no weights on this machine: the fallback has the same FLOPs
        which = f"fallback ({type(exc).__name__}: no Inception weights)"
        ext = fallback_extractor(real[: min(n, 50)], dims=dims, device=device, max_images=min(n, 50))
    cfg = load_config("dcgan-bitmoji", ["model.fid.every_n_epochs=0"])
    net = build_model(cfg).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    bs = 50 if n >= 50 else n

    def generated():
        for start in range(0, n, bs):
            z = torch.randn(min(bs, n - start), cfg.model.latent_dim, generator=gen).to(device)
            yield net.sample(z)

    sync(device)
    t0 = time.perf_counter()
    real_stats = Stats.from_features(features_from_tensors(ext, real, batch_size=bs), ext)
    sync(device)
    t_real = time.perf_counter() - t0
    t1 = time.perf_counter()
    fake_stats = Stats.from_features(features_from_tensors(ext, generated(), batch_size=bs, limit=n), ext)
    result = fid_from_stats(fake_stats, real_stats, extractor=ext)
    sync(device)
    t_fake = time.perf_counter() - t1
    return {"n": n, "dims": dims, "extractor": which, "label": ext.label, "fid": result.value,
            "seconds": t_real + t_fake, "seconds_cached_real": t_fake, "real_features_s": t_real}


# --- the study estimate --------------------------------------------------------------------------------------
def study_estimate(step_s: dict[str, float], fid_s_per_1000: float, prior_step_s: dict[str, float]) -> dict[str, Any]:
    """`genlab study --profile full` wall time from per-step times (training + per-epoch FID; validation
    forward passes counted at 1/3 of a training step per batch)."""
    rows = []

    def add(stage: str, model_key: str, train: int, val: int, epochs: int, batch: int, fid_per_epoch: float = 0.0,
            final_fid: float = 0.0, step_key: str | None = None, note: str = "") -> None:
        t = (step_key and step_s.get(step_key)) or step_s.get(model_key)
        if t is None:
            rows.append({"stage": stage, "hours": None, "note": f"no {model_key} step time measured"})
            return
        steps = epochs * math.ceil(train / batch)
        val_steps = epochs * math.ceil(val / batch)
        seconds = steps * t + val_steps * t / 3 + epochs * fid_per_epoch + final_fid
        rows.append({"stage": stage, "steps": steps, "step_s": t, "hours": seconds / 3600,
                     "note": note or f"{epochs} epochs x {train:,} images, batch {batch}"})

    bit_train = round(BITMOJI * 0.95)
    fid_epoch = fid_s_per_1000  # 1000 generated vs cached real statistics
    final = fid_s_per_1000 * (5000 + min(5000, bit_train)) / 1000  # final_n 5000 generated + real side
    add("vae-celeba", "vae-128", CELEBA_TRAIN, CELEBA_VAL, 30, 128)
    add("vae-dsprites", "vae-64", round(DSPRITES * 0.95), round(DSPRITES * 0.05), 30, 128)
    add("vae-dsprites-recipe", "vae-64", round(DSPRITES * 0.95), round(DSPRITES * 0.05), 30, 128,
        note="as vae-dsprites (Bernoulli likelihood)")
    for k in (128, 256, 512):
        add(f"vqvae-K{k}", "vqvae", TINY_TRAIN, TINY_VAL, 10, 32,
            note=f"10 epochs x {TINY_TRAIN:,} images, batch 32 (step time measured at K = 512)")
    for name in ("pixelcnn", "vae"):
        if name in prior_step_s:
            epochs, batch = (10, 32) if name == "pixelcnn" else (20, 64)
            steps = epochs * math.ceil(TINY_TRAIN / batch)
            rows.append({"stage": f"vqvae-K512 prior:{name}", "steps": steps, "step_s": prior_step_s[name],
                         "hours": steps * prior_step_s[name] / 3600,
                         "note": f"{epochs} epochs x {TINY_TRAIN:,} code maps, batch {batch}"})
    add("dcgan", "dcgan", bit_train, 0, 10, 128, fid_epoch, final,
        note=f"10 epochs x {bit_train:,} images + FID 1000 each epoch + final FID 5000")
    add("lsgan", "dcgan", bit_train, 0, 10, 128, fid_epoch, final, note="as dcgan (same networks)")
    add("bigan", "bigan", bit_train, 0, 10, 128, fid_epoch, final, note="as dcgan, + encoder")
    add("dcgan-recipe", "dcgan", bit_train, 0, 10, 128, fid_epoch, final,
        note="as dcgan (DiffAugment + EMA not timed: a few % more)")
    total = sum(r["hours"] for r in rows if r["hours"] is not None)
    return {"rows": rows, "total_hours": total,
            "excluded": "likelihood estimators (IS / Appendix D / AIS), code-map extraction, prior sampling and "
                        "evaluation, grids and reports; data caching on first use"}


def prior_steps(device: torch.device, tiny: bool, repeats: int) -> dict[str, float]:
    """Per-step time of the two neural priors over 32x32 code maps (fp32, hand-written loop)."""
    from genlab.models.registry import build_neural_prior

    cfg = load_config("vqvae-tinyimagenet", [] if not tiny else ["model.priors.pixelcnn.hidden=8",
                                                                 "model.priors.pixelcnn.layers=2",
                                                                 "model.priors.vae.hidden=8"])
    grid = (8, 8) if tiny else (32, 32)
    out = {}
    for kind, batch in (("pixelcnn", 4 if tiny else 32), ("vae", 4 if tiny else 64)):
        net = build_neural_prior(kind, cfg, grid).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        codes = torch.randint(0, cfg.model.num_codes, (batch, *grid), device=device)
        times = []
        for i in range(2 + 3 * repeats):
            if i == 2:
                sync(device)
                t0 = time.perf_counter()
            loss = net.loss(codes)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append((time.perf_counter() - t0) / (3 * repeats))
        out[kind] = statistics.median(times)
    return out


# --- the report ---------------------------------------------------------------------------------------------
def markdown(res: dict[str, Any]) -> str:
    d = res["device"]
    lines = [f"# genlab device check ({'tiny mode, ' if res['tiny'] else ''}{d['type']})", "",
             f"- device: **{d['name']}**", f"- torch {d['torch']}, CUDA {d['cuda'] or 'none'}, "
             f"Lightning {d['lightning']}; {res['date']}",
             f"- command: `{res['command']}`", f"- wall time: {res['wall_s']:.0f} s (budget {res['budget_s']:.0f} s)",
             f"- host load average (1 min) at start / end: {res['load_average']['start']:.1f} / "
             f"{res['load_average']['end']:.1f} ({os.cpu_count()} logical cores on this host)",
             "", "## Training throughput: genlab's Lightning loop vs a minimal hand-written loop", "",
             "Same network, Adam, batch size and device-resident data; alternate repeats in one process; "
             "ratio = genlab / hand-written (median over repeats).", "",
             "| model | variant | batch | hand-written img/s | genlab img/s | ratio | genlab s/step | "
             "warm-up s (genlab) |", "|---|---|---|---|---|---|---|---|"]
    for r in res["throughput"]:
        if r.get("skipped"):
            lines.append(f"| {r['model']} | {r['variant']} | | | | skipped: {r['skipped']} | | |")
        else:
            lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | {r['hand_img_s']:.1f} | "
                         f"{r['genlab_img_s']:.1f} | {r['ratio']:.2f} | {r['genlab_step_s']:.4f} | "
                         f"{r['genlab_warmup_s']:.1f} |")
    f = res.get("fid")
    lines += ["", "## FID", ""]
    if f:
        lines += [f"- {f['n']} vs {f['n']} images at 64 px, {f['dims']}-d, extractor: {f['extractor']}",
                  f"- cold (real + generated features, Fréchet distance): **{f['seconds']:.2f} s**; with cached "
                  f"real statistics: **{f['seconds_cached_real']:.2f} s** (FID value on these synthetic images: "
                  f"{f['fid']:.1f}, not meaningful)"]
        if f["n"] != 1000:
            lines.append("- scaled to 1000 vs 1000 (linear, so fixed costs are overcounted): "
                         f"{f['seconds'] * 1000 / f['n']:.1f} s cold, "
                         f"{f['seconds_cached_real'] * 1000 / f['n']:.1f} s cached")
    else:
        lines.append("- not measured (time budget)")
    est = res.get("study_estimate")
    lines += ["", "## Estimate of `genlab study --profile full` on this device", ""]
    if est and res["tiny"]:
        lines += ["Tiny mode: the networks and batches are not the study's, so these hours only exercise the "
                  "arithmetic; they are not an estimate.", ""]
    if est:
        lines += [f"Per-step times from the genlab loop ({est['variant']} rows; missing rows fall back to fp32), "
                  f"full dataset sizes; validation at 1/3 of a step per batch. Not included: {est['excluded']}.", "",
                  "| stage | steps | s/step | hours | how |", "|---|---|---|---|---|"]
        for r in est["rows"]:
            if r["hours"] is None:
                lines.append(f"| {r['stage']} | | | | {r['note']} |")
            else:
                lines.append(f"| {r['stage']} | {r['steps']:,} | {r['step_s']:.4f} | {r['hours']:.2f} | {r['note']} |")
        lines += [f"| **total** | | | **{est['total_hours']:.1f}** | stages one after another on one device |"]
    else:
        lines.append("- not computed (time budget)")
    if res["skipped_lines"]:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in res["skipped_lines"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="small networks and batches, a few steps (the test)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--stem", default=None, help="file names (default gpu_check_<device type>)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new rows after this many seconds (default 420 on a GPU, 840 on a CPU)")
    p.add_argument("--cpu-all-rows", action="store_true",
                   help="on a CPU, also run the GPU-only rows (channels_last, compile): checks the script's code")
    p.add_argument("--repeats", type=int, default=None, help="alternating repeats per row (default 2, tiny 1)")
    p.add_argument("--fid-n", type=int, default=None, help="images per FID side (default 1000 GPU, 200 CPU, 8 tiny)")
    args = p.parse_args(argv)
    t_begin = time.perf_counter()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    repeats = args.repeats or (2 if gpu and not args.tiny else 1)
    if args.tiny:
        warmup, steps = 1, 2
    elif gpu:
        warmup, steps = 10, 40
    else:
        warmup, steps = 1, 2
    fid_n = args.fid_n or (4 if args.tiny else (1000 if gpu else 50))
    if args.budget_s is None:
        args.budget_s = 420.0 if gpu else 840.0
    stem = args.stem or f"gpu_check_{device.type}"
    res: dict[str, Any] = {
        "tiny": args.tiny, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name if argv is None else "gpu_check.py", *(argv or sys.argv[1:])]),
        "device": {"type": device.type, "name": device_name(device), "torch": torch.__version__,
                   "cuda": torch.version.cuda if gpu else None, "lightning": L.__version__,
                   "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32,
                            "cudnn": torch.backends.cudnn.allow_tf32} if gpu else None},
        "budget_s": args.budget_s, "throughput": [], "skipped_lines": [], "wall_s": 0.0,
        "load_average": {"start": os.getloadavg()[0], "end": None}}
    out_json, out_md = args.out / f"{stem}.json", args.out / f"{stem}.md"

    def save() -> None:
        res["wall_s"] = time.perf_counter() - t_begin
        res["load_average"]["end"] = os.getloadavg()[0]
        atomic_write_json(out_json, res)
        atomic_write_text(out_md, markdown(res))

    def left() -> float:
        return args.budget_s - (time.perf_counter() - t_begin)

    def say(msg: str) -> None:
        print(f"[gpu_check {time.perf_counter() - t_begin:6.0f}s] {msg}", flush=True)

    say(f"device: {res['device']['name']}")
    compiler = compiler_problem(device.type)
    work = [(m, v) for v in VARIANTS[:2] for m in MODELS] + [(m, v) for v in VARIANTS[2:] for m in MODELS]
    datasets: dict[str, torch.Tensor] = {}
    step_s: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fid_done = False
        for i, (model, variant) in enumerate(work):
            row: dict[str, Any] = {"model": model.key, "variant": variant.key}
            reason = None
            if not gpu and not args.cpu_all_rows and (variant.channels_last or variant.compile):
                reason = "GPU-only row (channels_last / compile target tensor-core GPUs; not timed on a CPU)"
            elif args.tiny and variant.key != "fp32" and model.key != "vae-64":
                reason = "tiny mode: only vae-64 runs in bf16 (every model's bf16 path is a test of its own)"
            elif variant.compile and compiler:
                reason = f"no compiler: {compiler}"
            elif left() < 0:
                reason = "time budget spent"
            elif variant.compile and left() < 120:
                reason = "time budget: under 120 s left, too little for a compile row"
            if reason:
                row["skipped"] = reason
                res["throughput"].append(row)
                res["skipped_lines"].append(f"{model.key} {variant.key}: {reason}")
                say(f"{model.key:8s} {variant.key:28s} skipped: {reason}")
                save()
                continue
            cfg = make_cfg(model, variant, args.tiny, device, tmp, warmup + steps)
            bs = cfg.data.batch_size
            if model.key not in datasets:
                datasets[model.key] = fake_images(bs * (warmup + steps), model.channels, model.size).to(device)
            data = datasets[model.key]
            hands, ours = [], []
            try:
                for _ in range(repeats if not variant.compile else 1):
                    hands.append(hand_written(cfg, data, variant, warmup, steps, device))
                    ours.append(genlab_loop(cfg, data, warmup, steps, device))
            except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others
                row["skipped"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                res["throughput"].append(row)
                res["skipped_lines"].append(f"{model.key} {variant.key}: {row['skipped']}")
                say(f"{model.key:8s} {variant.key:28s} {row['skipped']}")
                save()
                continue
            ratios = [o["img_s"] / h["img_s"] for h, o in zip(hands, ours)]
            row.update(batch=bs, hand_img_s=statistics.median(h["img_s"] for h in hands),
                       genlab_img_s=statistics.median(o["img_s"] for o in ours), ratio=statistics.median(ratios),
                       ratios=ratios, genlab_step_s=statistics.median(o["step_s"] for o in ours),
                       hand_step_s=statistics.median(h["step_s"] for h in hands),
                       genlab_warmup_s=statistics.median(o["warmup_s"] for o in ours), steps=steps)
            step_s.setdefault(variant.key, {})[model.key] = row["genlab_step_s"]
            res["throughput"].append(row)
            say(f"{model.key:8s} {variant.key:28s} hand {row['hand_img_s']:9.1f} img/s  genlab "
                f"{row['genlab_img_s']:9.1f} img/s  ratio {row['ratio']:.2f}")
            save()
            if i == len(MODELS) - 1 and not fid_done:  # after the fp32 rows: FID + the estimate (refreshed at the end)
                fid_done = True
                _fid_and_estimate(res, step_s, device, fid_n, args.tiny, repeats, warmup, steps, tmp, say, left)
                save()
        if not fid_done:
            _fid_and_estimate(res, step_s, device, fid_n, args.tiny, repeats, warmup, steps, tmp, say, left)
        # the estimate again with the fastest measured variant's step times
        _refresh_estimate(res, step_s)
        save()
    say(f"wrote {out_md} and {out_json}")
    return 0


def _best_variant(step_s: dict[str, dict[str, float]]) -> str:
    full = [v for v in step_s if all(m.key in step_s[v] for m in MODELS)] or list(step_s) or ["fp32"]
    return min(full, key=lambda v: sum(step_s.get(v, {}).values()) or math.inf)


def _refresh_estimate(res: dict[str, Any], step_s: dict[str, dict[str, float]]) -> None:
    if "study_inputs" not in res:
        return
    inp = res["study_inputs"]
    variant = _best_variant(step_s)
    times = {**step_s.get("fp32", {}), **step_s.get(variant, {})}
    # BiGAN: the hand-written loop's bigan/dcgan ratio applied to genlab's dcgan step
    if "dcgan" in times and inp.get("bigan_over_dcgan"):
        times["bigan"] = times["dcgan"] * inp["bigan_over_dcgan"]
    est = study_estimate(times, inp["fid_cached_s_per_1000"], inp["prior_step_s"])
    est["variant"] = variant
    res["study_estimate"] = est


def _fid_and_estimate(res, step_s, device, fid_n, tiny, repeats, warmup, steps, tmp, say, left) -> None:
    if left() < 0:
        res["skipped_lines"].append("FID: time budget spent (the study estimate leaves the GANs' FID out)")
    else:
        say(f"FID {fid_n} vs {fid_n} ...")
        res["fid"] = fid_timing(fid_n, device, dims=64 if tiny else 2048)  # tiny: no 2048-d eigenproblem
        say(f"FID {fid_n} vs {fid_n}: {res['fid']['seconds']:.2f} s cold, {res['fid']['seconds_cached_real']:.2f} "
            f"s with cached real statistics ({res['fid']['extractor']})")
    # BiGAN vs DCGAN step ratio (hand-written, fp32), and the priors' steps
    ratio = None
    try:
        bigan = EXTRA[0]
        dc = MODELS[3]
        v = VARIANTS[0]
        cfg_b = make_cfg(bigan, v, tiny, device, tmp, warmup + steps)
        cfg_d = make_cfg(dc, v, tiny, device, tmp, warmup + steps)
        data = fake_images(cfg_b.data.batch_size * (warmup + steps), 3, 64).to(device)
        tb = hand_written(cfg_b, data, v, warmup, steps, device)["step_s"]
        td = hand_written(cfg_d, data, v, warmup, steps, device)["step_s"]
        ratio = tb / td
    except Exception as exc:  # noqa: BLE001
        res["skipped_lines"].append(f"bigan step time: {type(exc).__name__}: {exc}")
    priors = prior_steps(device, tiny, 1)
    fid = res.get("fid")
    res["study_inputs"] = {"fid_cached_s_per_1000": fid["seconds_cached_real"] * 1000 / fid["n"] if fid else 0.0,
                           "bigan_over_dcgan": ratio, "prior_step_s": priors}
    _refresh_estimate(res, step_s)
    say(f"study --profile full estimate: {res['study_estimate']['total_hours']:.1f} h")


if __name__ == "__main__":
    sys.exit(main())
