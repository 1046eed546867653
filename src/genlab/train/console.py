"""What a training run prints: one header line, the progress bar (loss and img/s), one line per epoch
with the metrics that matter for the model, and one final line saying where the results are.

Lightning's banners (`GPU available: ...`, `Trainer(limit_*_batches=1.0) was configured ...`,
`Trainer.fit stopped ...`, DDP's `Initializing distributed ...`) and the warnings known to be harmless
here are silenced; `genlab ... --verbose` (or GENLAB_VERBOSE=1, which DDP's worker processes inherit)
brings them back. Only rank 0 prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from rich import get_console

from genlab.progress import VERBOSE_ENV
from genlab.train.speed import AUTO, resolve_channels_last

# Lightning's INFO lines come through these loggers; WARNING and above still show
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")

# warnings that say nothing a genlab user can act on (regular expressions, matched from the start)
HARMLESS_WARNINGS = (
    ".*does not have many workers.*",  # num_workers=0 is the default on purpose (memory-mapped data)
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",  # Lightning vs newer torch, internal
    ".*no `validation_step`.*",  # GANs: FID is their validation
    ".*is smaller than the logging interval.*",  # tiny epochs: the epoch-level values are still logged
    ".*Checkpoint directory .* exists and is not empty.*",  # every resume: genlab owns that folder
    ".*sync_dist=True.*when logging on epoch level.*",  # rank-0-only metrics (codebook usage) are exact
    ".*The `srun` command is available on your system.*",  # a login node: not using SLURM is fine
    ".*`tensorboardX` has been removed as a dependency.*",  # handled: genlab checks for tensorboard itself
    ".*resuming from a checkpoint that ended before the epoch ended.*",  # genlab's sampler resumes mid-epoch exactly
    ".*could not find the monitored key.*",  # an epoch without FID (model.fid.every_n_epochs > 1) keeps best.ckpt
)

# the per-epoch line: (metric key, label, format); a key shows when it was logged in that epoch
EPOCH_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("train/loss_epoch", "loss", "{:.4g}"),
    ("train/g_loss_epoch", "G loss", "{:.3f}"),
    ("train/d_loss_epoch", "D loss", "{:.3f}"),
    ("val/elbo", "val ELBO", "{:.2f} nats"),
    ("val/kl", "KL", "{:.2f}"),
    ("val/psnr", "val PSNR", "{:.2f} dB"),
    ("val/usage", "codes used", "{:.0%}"),
    ("val/epoch_perplexity", "perplexity", "{:.1f}"),
    ("fid", "FID", "{:.4g}"),
    ("kid", "KID", "{:.4f}"),
)


def verbose_requested() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool) -> None:
    """The CLI's --verbose: an environment variable, so DDP worker processes (re-launched) see it too."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


@contextlib.contextmanager
def quiet_lightning(verbose: bool | None = None) -> Iterator[None]:
    """Silence Lightning's INFO banners and the known-harmless warnings for the duration (restored after)."""
    verbose = verbose_requested() if verbose is None else verbose
    with warnings.catch_warnings():
        for pattern in HARMLESS_WARNINGS[:3]:  # these three say nothing even with --verbose
            warnings.filterwarnings("ignore", pattern)
        if verbose:
            yield
            return
        for pattern in HARMLESS_WARNINGS[3:]:
            warnings.filterwarnings("ignore", pattern)
        loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def say(message: str) -> None:
    """One line on stdout through rich's shared console, the one the progress bar draws on, so a line
    printed while the bar is live goes above it."""
    get_console().print(message, highlight=False, soft_wrap=True)


class EpochMetrics(Logger):
    """A Lightning logger that keeps the values logged since the last `take()`: the epoch line shows
    what was measured in that epoch (an FID computed every other epoch does not repeat)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "console"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for key, value in metrics.items():
            with contextlib.suppress(TypeError, ValueError):
                self.values[key] = float(value)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def take(self) -> dict[str, float]:
        values, self.values = self.values, {}
        return values


def epoch_line(epoch: int, max_epochs: int | None, values: Mapping[str, float], seconds: float,
               img_per_s: float | None, best: bool = False) -> str:
    of = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
    parts = [f"{label} {number(fmt, values[key])}" for key, label, fmt in EPOCH_COLUMNS if key in values]
    parts.append(_duration(seconds))
    if img_per_s:
        parts.append(f"{img_per_s:,.0f} img/s")
    star = "  [green]best[/]" if best else ""
    return f"epoch {epoch + 1:>{len(of) - 1 if of else 1}}{of}  " + " · ".join(parts) + star


def number(fmt: str, value: float) -> str:
    """`fmt` applied to `value`, except that 4 significant digits of a large number print whole (27,270,
    not 2.727e+04)."""
    if fmt == "{:.4g}" and abs(value) >= 1e4:
        return f"{value:,.0f}"
    return fmt.format(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def describe_device(trainer: L.Trainer, settings: Any = None) -> str:
    """Where and how it trains, e.g. "cpu (2 threads), precision bf16-mixed (auto), channels_last";
    `settings` (the config's trainer section) says which choices were trainer.*: auto."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = f"cpu ({torch.get_num_threads()} threads)"
    else:
        name = device.type
    world = trainer.world_size
    where = f"{world} x {name}" if world > 1 else name
    if trainer.num_nodes > 1:
        where += f" on {trainer.num_nodes} nodes"
    line = f"{where}, precision {trainer.precision}"
    if settings is not None and settings.precision == AUTO:
        line += " (auto)"
    if settings is not None and resolve_channels_last(settings.channels_last, settings.accelerator):
        line += ", channels_last"
    return line


class ConsoleReport(L.Callback):
    """The header line at the start and one line per finished epoch (rank 0 only)."""

    def __init__(self, cfg: Any, run_dir: str | Path, metrics: EpochMetrics) -> None:
        self.cfg, self.run_dir, self.metrics = cfg, Path(run_dir), metrics
        self.pending: int | None = None  # the epoch whose line is due (printed once its values are all in)
        self.t_epoch = self.t_batch = 0.0
        self.train_seconds, self.images = 0.0, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        m, d = self.cfg.model, self.cfg.data
        dm = trainer.datamodule
        sizes = ""
        if dm is not None and getattr(dm, "train_set", None) is not None:
            n_val = len(dm.val_set) if getattr(dm, "val_set", None) is not None else 0
            sizes = f", {len(dm.train_set):,} train + {n_val:,} val images"
        resumed = f" · resumed at epoch {trainer.current_epoch + 1}" if trainer.current_epoch > 0 else ""
        say(f"[bold]{m.name}[/] on [bold]{d.name}[/] ({d.channels}x{d.image_size}x{d.image_size}{sizes}) · "
            f"{describe_device(trainer, self.cfg.trainer)} · {self.run_dir}{resumed}")
        self.metrics.take()  # anything logged before the first epoch (hparams) is not an epoch's

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._flush(trainer)
        self.t_epoch = time.perf_counter()
        self.train_seconds, self.images = 0.0, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.t_batch = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.images += int(x.shape[0]) * trainer.world_size
        self.train_seconds += time.perf_counter() - self.t_batch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # FID (a callback that runs after this one) and the epoch means are logged after this hook:
        # the line waits for the next epoch's start, or the end of training
        self.pending = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._flush(trainer)

    def _flush(self, trainer: L.Trainer) -> None:
        if self.pending is None or not trainer.is_global_zero:
            self.pending = None
            return
        values = self.metrics.take()
        rate = self.images / self.train_seconds if self.train_seconds > 0 else None
        say(epoch_line(self.pending, trainer.max_epochs, values, time.perf_counter() - self.t_epoch, rate,
                       best=self._improved(trainer, values)))
        self.pending = None

    @staticmethod
    def _improved(trainer: L.Trainer, values: Mapping[str, float]) -> bool:
        cb = trainer.checkpoint_callback
        monitor = getattr(cb, "monitor", None)
        score = getattr(cb, "best_model_score", None)
        return monitor in values and score is not None and float(score) == values[monitor]


class TrainingBar(RichProgressBar):
    """Lightning's rich bar, on a terminal only, showing the step losses and img/s (the epoch line has
    the rest); it does not stay behind after training."""

    def get_metrics(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        for key, value in super().get_metrics(trainer, pl_module).items():
            if key.endswith("loss_step"):
                shown[key.removeprefix("train/").removesuffix("_step").replace("_", " ")] = _short(value)
            elif key == "img_per_s":
                shown["img/s"] = f"{float(value):,.0f}"
        return shown

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:  # counted from 1, like the epoch lines
            of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
            text = f"epoch {trainer.current_epoch + 1}{of}"
            self.progress.update(self.train_progress_bar_id, description=f"{text:{len(self.validation_description)}}")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.progress is not None:
            for task in self.progress.tasks:
                self.progress.update(task.id, visible=False)
            self.refresh(hard=True)


def _short(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def use_progress_bar(requested: bool) -> bool:
    """The bar draws on a terminal; in a pipe or a log file the epoch lines alone say how it goes."""
    return requested and sys.stdout.isatty()


def finished_line(run_dir: str | Path, epochs: int, seconds: float, monitor: str | None = None,
                  best: float | None = None, tensorboard: bool = False) -> str:
    """`run finished in 33.0 s (2 epochs), best val ELBO -2722.04 nats: RUN (report.html, ...)`"""
    run_dir = Path(run_dir)
    head = f"[bold green]run finished[/] in {_duration(seconds)} ({epochs} epoch{'s' if epochs != 1 else ''})"
    if monitor and best is not None:
        label, fmt = next(((lb, f) for key, lb, f in EPOCH_COLUMNS if key == monitor), (monitor, "{:.4g}"))
        head += f", best {label} {number(fmt, best)}"
    where = [name for name in ("report.html", "metrics.csv") if (run_dir / name).is_file()]
    if tensorboard:
        where.append(f"tensorboard --logdir {run_dir.parent}")
    return f"{head}: {run_dir}" + (f"  ({', '.join(where)})" if where else "")
