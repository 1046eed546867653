"""The run's loggers: metrics.csv (Lightning's CSV logger, except that a resumed run appends to it)
and TensorBoard event files in RUN/tensorboard/.

Lightning's CSV writer deletes an existing metrics.csv when it starts; for a resumed run that would
throw away the curves of everything before the interruption. What it logged after the checkpoint the
run resumes from is logged again by the resumed run, so `ResumedMetrics` drops those rows first:
each row is in metrics.csv once, whatever the kills and resumes.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Mapping

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from genlab.io import atomic_path


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as fh:
                self.metrics_keys = list(csv.DictReader(fh).fieldnames or [])


class RunMetricsLogger(CSVLogger):
    def __init__(self, run_dir: str | os.PathLike) -> None:
        super().__init__(save_dir=run_dir, name="", version="")

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def drop_rows_from(path: str | os.PathLike, step: int) -> int:
    """Remove (atomically) the rows of metrics.csv logged at `step` or later; returns how many."""
    if not os.path.isfile(path):
        return 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < step]
    if len(kept) < len(rows):
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
    return len(rows) - len(kept)


class ResumedMetrics(L.Callback):
    """On a resumed fit, drop the metrics.csv rows logged after the checkpoint's state (a kill after
    it, or a SIGTERM's last.ckpt mid-epoch): the resumed run logs those steps again. Rows carry the
    logger's step, the batches done (`_batches_that_stepped`, the checkpoint's own counter; a GAN's
    global_step counts both optimisers), and row k is logged after batch k, so rows with step >= the
    checkpoint's count are the ones redone."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and trainer.is_global_zero:
            drop_rows_from(self.path, trainer.fit_loop.epoch_loop._batches_that_stepped)


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def flat_config(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (`model.latent_dim`, the CLI's override names), TensorBoard-typed."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:  # None, lists: as text
            flat[name] = str(value)
    return flat


class RunTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger, writing RUN/tensorboard/events.*: the scalars every
    trainer.log_every_n_steps and per epoch, images added by callbacks (ImageGrids), and the config as
    TensorBoard hparams (dotted keys) with the run's monitored metric as the HParams metric.
    config.yaml stays the one record of the config: no second hparams.yaml is written."""

    def __init__(self, run_dir: str | os.PathLike, monitor: str) -> None:
        super().__init__(save_dir=run_dir, name="", version="tensorboard", default_hp_metric=False)
        self.monitor = monitor

    @rank_zero_only
    def log_hyperparams(self, params: Any, metrics: Any = None, step: int | None = None) -> None:
        from torch.utils.tensorboard.summary import hparams

        params = dict(params) if isinstance(params, Mapping) else dict(vars(params))
        params = params.get("config", params)  # a genlab module's hparams are {"config": {...}}
        # the metric's values are read from the scalars of the same tag (`val/elbo`, `fid`, ...)
        for summary in hparams(flat_config(params), {self.monitor: 0.0}):
            self.experiment.file_writer.add_summary(summary)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        # Lightning adds the epoch number to every record: a staircase curve TensorBoard's step axis makes moot
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)

    @rank_zero_only
    def save(self) -> None:
        self.experiment.flush()
