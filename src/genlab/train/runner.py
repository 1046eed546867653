"""`train(cfg)`: one call that builds the run directory, the Lightning Trainer and its callbacks,
fits, and writes the end-of-run artefacts. The CLI and the Python API both come through here."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from genlab.config import ExperimentConfig
from genlab.errors import GenlabError, Interrupted
from genlab.models.registry import monitor_of
from genlab.runs import Run
from genlab.train.callbacks import ImageGrids, OptimizerSettings, RNGState, RunLifecycle, Throughput
from genlab.train.checkpoint_io import AtomicCheckpointIO, resume_checkpoint
from genlab.train.console import ConsoleReport, EpochMetrics, TrainingBar, finished_line, quiet_lightning, say, use_progress_bar
from genlab.train.datamodule import GenlabDataModule
from genlab.train.metrics_log import ResumedMetrics, RunMetricsLogger, RunTensorBoardLogger, tensorboard_available
from genlab.train.registry import build_module, module_class
from genlab.train.speed import resolve_precision


class _DropAdverts(logging.Filter):
    """Lightning logs a product tip at every fit; it is noise in a research tool's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())

RUN_DIR_ENV = "GENLAB_RUN_DIR"  # how DDP worker processes (re-launched by Lightning) find rank 0's run


def _is_launched_worker() -> bool:
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def open_or_create_run(cfg: ExperimentConfig, resume: str | Path | None) -> Run:
    if resume is not None:
        run = Run.open(resume)
        if not run.last_checkpoint.is_file() and not run.best_checkpoint.is_file():
            raise GenlabError(f"{run.path}: nothing to resume (no {run.last_checkpoint.name} in {run.checkpoints})")
        return run
    if _is_launched_worker() and os.environ.get(RUN_DIR_ENV):
        return Run(Path(os.environ[RUN_DIR_ENV]))
    if _is_launched_worker() and cfg.output.run_name:  # other nodes: the name is shared by config
        return Run(Path(cfg.output.runs_dir) / cfg.output.run_name)
    run = Run.create(cfg)
    os.environ[RUN_DIR_ENV] = str(run.path.resolve())
    return run


def build_trainer(cfg: ExperimentConfig, run: Run, extra_callbacks: list[L.Callback] | None = None) -> L.Trainer:
    t = cfg.trainer
    world = (t.devices if isinstance(t.devices, int) else 1) * t.num_nodes
    strategy = "ddp" if t.strategy == "auto" and world > 1 else t.strategy
    monitor, mode = monitor_of(cfg.model.name)  # registered with the model (genlab.models.registry)
    best = ModelCheckpoint(dirpath=run.checkpoints, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           save_last=False, enable_version_counter=False, auto_insert_metric_name=False)
    # Lightning 2.6's save_last only writes last.ckpt when best.ckpt was written at the same step, so an
    # epoch that does not improve the metric would leave last.ckpt (and --resume) behind: save it apart.
    last = ModelCheckpoint(dirpath=run.checkpoints, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False, auto_insert_metric_name=False)
    callbacks: list[L.Callback] = [best, last, RNGState(), RunLifecycle(run), ResumedMetrics(run.metrics_path),
                                   Throughput(),
                                   OptimizerSettings(cfg.optimizer),
                                   ImageGrids(run, cfg.output.grid_every_n_epochs, seed=t.seed)]
    bar = use_progress_bar(t.progress_bar)
    epochs = EpochMetrics()
    callbacks.append(ConsoleReport(cfg, run.path, epochs))
    if bar:
        callbacks.append(TrainingBar(leave=False))
    callbacks += extra_callbacks or []
    # metrics.csv first: trainer.log_dir (the run directory) is the first logger's
    loggers: list = [RunMetricsLogger(run.path), epochs]
    if tensorboard_enabled(cfg):
        loggers.insert(1, RunTensorBoardLogger(run.path, monitor))
    return L.Trainer(
        default_root_dir=run.path,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=resolve_precision(t.precision, t.accelerator),
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,  # it would consume RNG draws that an uninterrupted run never made
        use_distributed_sampler=False,  # EpochShuffleSampler shards by rank itself
        deterministic=False,
    )


def tensorboard_enabled(cfg: ExperimentConfig) -> bool:
    return cfg.output.tensorboard and tensorboard_available()


def train(cfg: ExperimentConfig, resume: str | Path | None = None,
          extra_callbacks: list[L.Callback] | None = None, verbose: bool | None = None) -> Run:
    """Train `cfg` in a new run directory, or continue `resume` (a run directory) from last.ckpt.
    Prints a header line, one line per epoch and a final line (rank 0); `verbose=True` (or
    GENLAB_VERBOSE=1) also lets Lightning's own banners through."""
    t0 = time.perf_counter()
    with contextlib.ExitStack() as held:
        run, ckpt = None, None
        if resume is not None:
            run = open_or_create_run(cfg, resume)
            hold(held, run)
            ckpt = str(resume_checkpoint([run.last_checkpoint, run.best_checkpoint], warn=_say))
            cfg = _resumed_config(run, cfg)
        L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
        module = build_module(cfg)
        datamodule = GenlabDataModule(cfg.data, seed=cfg.trainer.seed)
        datamodule.setup("fit")  # a missing or corrupt dataset fails here, before a run folder exists
        if run is None:
            run = open_or_create_run(cfg, None)
            hold(held, run)
        with quiet_lightning(verbose):
            trainer = build_trainer(cfg, run, extra_callbacks)
            try:
                with lightning_handles_sigterm() as received:
                    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
            except SIGTERMException:
                raise Interrupted(f"training stopped by SIGTERM; checkpoint saved. "
                                  f"Continue with: genlab train --resume {run.path}") from None
        if received:  # SIGTERM after the last batch: the checkpoints are written, stop before the rest
            if trainer.is_global_zero:
                run.set_status("interrupted", message=f"stopped by SIGTERM after training; continue with: "
                               f"genlab train --resume {run.path}")
            raise Interrupted(f"stopped by SIGTERM after training; checkpoints saved. "
                              f"Continue with: genlab train --resume {run.path}")
        if trainer.is_global_zero:
            try:
                finish_run(run, cfg)
            except KeyboardInterrupt:  # a late Ctrl-C: the weights are saved, only the report is missing
                run.set_status("interrupted", message=f"training finished; report not written: "
                               f"genlab report {run.path}")
                raise Interrupted(f"interrupted after training; the checkpoints are saved. Write the report "
                                  f"with: genlab report {run.path}") from None
            say(final_line(trainer, run, cfg, time.perf_counter() - t0))
    return run


def final_line(trainer: L.Trainer, run: Run, cfg: ExperimentConfig, seconds: float) -> str:
    best = trainer.checkpoint_callback
    score = getattr(best, "best_model_score", None)
    return finished_line(run.path, trainer.current_epoch, seconds, monitor=getattr(best, "monitor", None),
                         best=None if score is None else float(score), tensorboard=tensorboard_enabled(cfg))


@contextlib.contextmanager
def lightning_handles_sigterm():
    """During fit, SIGTERM is Lightning's: it stops at a batch boundary and RunLifecycle saves last.ckpt.
    Lightning would also call a handler installed before it (the CLI's, which raises at once, mid-step),
    so that one is replaced for the fit by one that only remembers the signal: a SIGTERM in the moments
    Lightning is not listening (its set-up and tear-down) is then neither fatal nor lost. Yields the
    list of signals received."""
    received: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum)) if main else None
    try:
        yield received
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def hold(stack: contextlib.ExitStack, run: Run) -> None:
    """Take the run's lock for this process (rank 0 only: DDP workers run under their launcher's lock)."""
    if not _is_launched_worker():
        stack.enter_context(run.lock())


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _resumed_config(run: Run, cfg: ExperimentConfig) -> ExperimentConfig:
    """A resumed run keeps its model and data; the trainer settings (e.g. more epochs) may change, and
    optimizer.* is applied to the restored optimisers (OptimizerSettings), so config.yaml stays true."""
    saved = run.config()
    for section in ("model", "data"):
        if getattr(cfg, section) != getattr(saved, section):
            raise GenlabError(f"--resume {run.path}: the '{section}' section differs from the run's config.yaml; "
                              "a resumed run keeps its model and data (only trainer.* etc. may change)")
    if not _is_launched_worker():
        run.prepare(cfg)
    return cfg


def finish_run(run: Run, cfg: ExperimentConfig) -> None:
    from genlab.viz.curves import plot_curves

    if run.metrics_path.is_file():
        plot_curves(run.metrics_path, run.plots / "loss_curves.png", title=cfg.name,
                    panels=module_class(cfg.model.name).CURVE_PANELS)
    run.set_status("finished", message="")
    from genlab.viz.report import write_report

    try:  # the weights are safe by now; a report problem must not turn a finished run into a crash
        write_report([run.path])
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{run.report} not written ({type(exc).__name__}: {exc}); retry with: genlab report {run.path}",
                      stacklevel=2)
