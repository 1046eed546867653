"""Training DCGAN, LSGAN and BiGAN with Lightning's manual optimisation.

One batch = one discriminator step, and a generator step every `model.d_steps` batches (the
mimicry / WGAN `n_dis` convention: each real image is seen by D once per epoch). Lightning's
`trainer.max_steps` counts optimiser steps of both networks (D + G), not batches.

Images arrive in [0, 1] and are mapped to [-1, 1] here; the model's `sample` maps back. With
`model.ema` set, the model's `ema_generator`, an exponential moving average of the generator
(weights and BatchNorm statistics) updated here after each generator step, is what samples, the
grids and FID use.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import torch

from genlab.config import ExperimentConfig
from genlab.models.bigan import generator_encoder_loss
from genlab.models.contract import from_unit
from genlab.models.dcgan import GAN, discriminator_loss, generator_loss
from genlab.models.registry import build_model
from genlab.train.base import GenlabModule, images_of
from genlab.train.diffaugment import diff_augment, parse_policy

SMOOTHING = 0.98  # of the plotted loss curves (debiased exponential moving average)


def ema_weight(decay: float, updates: int) -> float:
    """The weight of the current generator in the EMA's n-th update: 1 at the first (a copy),
    then 1 - min(decay, (1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage ramp): a plain
    0.999 would still be 74% the initial weights after the study's ~300 steps."""
    return 1.0 if updates == 0 else 1 - min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, current: torch.nn.Module, weight: float) -> None:
    """ema <- ema + weight (current - ema), parameters and buffers alike (BatchNorm statistics);
    integer buffers (batch counts) are copied."""
    pairs = zip(itertools.chain(ema.parameters(), ema.buffers()),
                itertools.chain(current.parameters(), current.buffers()))
    for a, c in pairs:
        a.lerp_(c, weight) if a.is_floating_point() else a.copy_(c)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 discriminator outputs (autocast) in float32 for the losses; float64 stays."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """No weight gradients for `module` inside the block (the G step does not need D's)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class GANModule(GenlabModule):
    CURVE_PANELS = {
        "generator loss": ["train/g_loss_step", "train/g_loss_smooth", "train/g_loss_epoch"],
        "discriminator loss": ["train/d_loss_step", "train/d_loss_smooth", "train/d_loss_epoch"],
        "FID per epoch (extractor: eval/fid.json)": ["fid"],
        "KID per epoch": ["kid"],
        "pixel diversity and coverage (held-out, 500 samples)": ["pixel_diversity", "pixel_coverage"],
    }

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.automatic_optimization = False
        self.net: GAN = build_model(cfg)
        self.bigan = cfg.model.name == "bigan"
        self.loss_kind = "ls" if cfg.model.name == "lsgan" else "bce"
        self.policy = parse_policy(cfg.model.diffaugment)
        if cfg.model.ema is not None:
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._smooth: dict[str, list[float]] = {}

    # --- training -------------------------------------------------------------------------------
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        x = from_unit(images_of(batch))
        z = torch.randn(x.shape[0], self.net.latent_dim, device=x.device, dtype=x.dtype)
        g_turn = (batch_idx + 1) % self.cfg.model.d_steps == 0
        G, D = self.net.generator, self.net.discriminator

        with torch.set_grad_enabled(g_turn):  # no graph through G when only D steps
            fake = G(z)
            code = self.net.encoder(x) if self.bigan else None
        if self.bigan:
            d_real = D(self._augment(x), code.detach())
            d_fake = D(self._augment(fake.detach()), z)
        else:
            d_real, d_fake = D(self._augment(x)), D(self._augment(fake.detach()))
        d_real, d_fake = _wide(d_real), _wide(d_fake)  # the losses in float32 under bf16 autocast
        d_loss = discriminator_loss(d_real, d_fake, self.loss_kind)
        self.check_finite(d_loss, "discriminator loss")
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self._log_loss("d_loss", d_loss, x.shape[0])
        self._log_d_outputs(d_real, d_fake, x.shape[0])

        if g_turn:
            with frozen(D):
                if self.bigan:
                    g_loss = generator_encoder_loss(_wide(D(self._augment(x), code)), _wide(D(self._augment(fake), z)))
                else:
                    g_loss = generator_loss(_wide(D(self._augment(fake))), self.loss_kind)
            self.check_finite(g_loss, "generator loss")
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            if self.net.ema_generator is not None:
                update_ema(self.net.ema_generator, G, ema_weight(self.cfg.model.ema, int(self.ema_updates)))
                self.ema_updates += 1
            self._log_loss("g_loss", g_loss, x.shape[0])

    def _log_loss(self, name: str, value: torch.Tensor, batch_size: int) -> None:
        v = float(value.detach())
        self.log(f"train/{name}", v, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        avg, count = self._smooth.get(name, [0.0, 0])
        avg, count = SMOOTHING * avg + (1 - SMOOTHING) * v, count + 1
        self._smooth[name] = [avg, count]
        self.log(f"train/{name}_smooth", avg / (1 - SMOOTHING ** count), on_step=True, on_epoch=False)

    def _log_d_outputs(self, d_real: torch.Tensor, d_fake: torch.Tensor, batch_size: int) -> None:
        # BCE models: mean D(x) and D(G(z)) as probabilities; LSGAN: the raw scores (targets 1 and 0).
        f = torch.sigmoid if self.loss_kind == "bce" else (lambda t: t)
        self.log("train/d_real", f(d_real.detach()).mean(), on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/d_fake", f(d_fake.detach()).mean(), on_step=True, on_epoch=True, batch_size=batch_size)

    def configure_optimizers(self):
        o = self.cfg.optimizer
        g_params = list(self.net.generator.parameters())
        if self.bigan:
            g_params += list(self.net.encoder.parameters())
        kwargs = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        return [torch.optim.Adam(g_params, **kwargs), torch.optim.Adam(self.net.discriminator.parameters(), **kwargs)]

    def configure_callbacks(self):
        from genlab.train.fid_callback import FIDCallback

        fid = self.cfg.model.fid
        if fid.every_n_epochs == 0 and fid.final_n == 0:
            return []
        return [FIDCallback(fid, self.cfg.data, seed=self.cfg.trainer.seed)]

    # --- the smoothing state survives resume ----------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_loss_smoothing"] = {k: list(v) for k, v in self._smooth.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._smooth = {k: list(v) for k, v in checkpoint.get("gan_loss_smoothing", {}).items()}
