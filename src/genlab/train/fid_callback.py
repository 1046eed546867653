"""FID/KID of a GAN during training, through `genlab.eval.fid`.

Every `model.fid.every_n_epochs` epochs: `n` generated images (the same noise each time) against
`n` real training images whose statistics are computed once and cached on disk. At the end of
training: best.ckpt's generator with `final_n` generated images from fresh noise (not the noise
best.ckpt was chosen on, so the value is not biased by that choice) against min(final_n, training
images) real ones; with `final_n == n` the per-epoch real statistics are reused as they are, so the
final evaluation costs one pass over `final_n` generated images (the Bitmoji configs: 1000, about a
minute and a half on a 2-core CPU). Values are logged as `fid` / `kid` (so best.ckpt is the best FID) and written,
with N per side and the feature extractor, to RUN/eval/fid.json. Without the Inception weights
(`extractor: auto`: not found, and the download on first use failed or $GENLAB_OFFLINE is set) the
fallback extractor is used; every output says its values are NOT comparable to published FIDs, and
fid.json's `fallback_reason` says why.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from genlab.config import DataConfig, GANFIDConfig
from genlab.errors import GenlabError
from genlab.eval.features import FeatureExtractor, extractor_choice, fallback_extractor, inception_extractor
from genlab.eval.fid import FIDEvaluator, FIDResult, cached_stats
from genlab.io import atomic_path, atomic_write_json
from genlab.runs import Run
from genlab.safe_load import load_torch

NOT_COMPARABLE = "fallback feature extractor: these values are NOT comparable to published FIDs"
FINAL_NOISE_SEED = 2  # the final evaluation's noise: model.fid.seed + 2 (the per-epoch one is seed + 1)


def build_extractor(settings: GANFIDConfig, real_images: Callable[[], Any]) -> FeatureExtractor:
    """The Inception network when its weights are found (or required), else the fallback one
    calibrated on the real images."""
    choice, why = extractor_choice(settings.extractor, settings.weights, "model.fid.extractor")
    if choice == "inception":
        return inception_extractor(settings.weights, settings.dims)
    extractor = fallback_extractor(real_images(), seed=settings.seed, dims=settings.dims,
                                   batch_size=settings.batch_size)
    extractor.fallback_reason = why  # fid.json (and so the report) say why the values are not real FIDs
    return extractor


def dataset_id(data: DataConfig, split_seed: int, pick_seed: int) -> str:
    """What the real images are, for the statistics cache key (changes when any of it changes)."""
    spec = data.model_dump(mode="json", exclude={"batch_size", "num_workers", "cache"})
    if data.root:
        spec["root"] = str(Path(data.root).expanduser().resolve())
    return json.dumps({**spec, "split": "train", "split_seed": split_seed, "pick_seed": pick_seed}, sort_keys=True)


class FIDCallback(L.Callback):
    def __init__(self, settings: GANFIDConfig, data: DataConfig, seed: int = 0,
                 extractor: FeatureExtractor | None = None) -> None:
        self.settings, self.data, self.split_seed = settings, data, seed
        self.extractor = extractor  # injected in tests; built on first use otherwise
        self.evaluator: FIDEvaluator | None = None
        self.run: Run | None = None
        self.record: dict[str, Any] = {}
        self.real_set = None
        self.held_out: torch.Tensor | None = None  # data.holdout images for the pixel scores, loaded once
        self.order: list[int] = []
        self.trainer: L.Trainer | None = None
        self.final_done = False  # on_train_end ran in this fit

    def stop_if_asked(self) -> None:
        """Lightning only checks for SIGTERM between training batches; an FID of thousands of images
        (the final one runs after the last batch) checks it itself, once per batch of images."""
        if self.trainer is not None and self.trainer.received_sigterm:
            raise SIGTERMException

    # --- real images ------------------------------------------------------------------------------
    def _real_batches(self, n: int) -> Callable[[], Iterator[torch.Tensor]]:
        def batches() -> Iterator[torch.Tensor]:
            bs = self.settings.batch_size
            for start in range(0, n, bs):
                self.stop_if_asked()
                yield torch.stack([self.real_set[i][0] for i in self.order[start:start + bs]])
        return batches

    def _real_stats(self, n: int):
        if n > len(self.order):
            raise GenlabError(f"model.fid.n={n} but the training set has only {len(self.order)} images; "
                              f"lower model.fid.n (e.g. model.fid.n={len(self.order)})")
        return cached_stats(self.extractor, self._real_batches(n), dataset_id(self.data, self.split_seed,
                            self.settings.seed), n, transform=f"{self.data.image_size}px:{self.data.channels}ch",
                            batch_size=self.settings.batch_size,
                            description=f"FID features of {n} real training images (cached for later runs)")

    def _ensure_evaluator(self) -> FIDEvaluator:
        if self.evaluator is None:
            n = min(self.settings.n, len(self.order))
            if self.extractor is None:
                self.extractor = build_extractor(self.settings, self._real_batches(n))
            if n < self.settings.n:  # a tiny training set: fewer real images, said once, instead of a crash
                warnings.warn(f"model.fid.n={self.settings.n} but the training set has only {n} images; the "
                              f"per-epoch FID uses {n} real images", stacklevel=2)
            self.evaluator = FIDEvaluator(self.extractor, self._real_stats(n),
                                          self.settings.batch_size, self.settings.kid_subset_size)
        return self.evaluator

    # --- generated images -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, pl_module: Any, evaluator: FIDEvaluator, n: int, noise_seed: int = 1,
                 description: str = "FID features of generated images") -> FIDResult:
        """FID/KID of `n` images from `pl_module.net.sample`, always from the same noise
        (`model.fid.seed + noise_seed`)."""
        was_training = pl_module.training
        pl_module.eval()
        gen = torch.Generator().manual_seed(self.settings.seed + noise_seed)
        bs = self.settings.batch_size

        def fakes() -> Iterator[torch.Tensor]:
            for start in range(0, n, bs):
                self.stop_if_asked()
                z = pl_module.net.noise(min(bs, n - start), gen).to(pl_module.device)
                yield pl_module.net.sample(z).float()
        try:
            return evaluator(fakes(), n, description=description)
        finally:
            pl_module.train(was_training)

    # --- hooks --------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.run = Run(Path(trainer.default_root_dir))
        self.trainer = trainer
        if getattr(trainer, "datamodule", None) is None or getattr(trainer.datamodule, "train_set", None) is None:
            raise GenlabError("FID during training needs the real images of a GenlabDataModule (train via "
                              "genlab.train.runner.train), or set model.fid.every_n_epochs=0 and model.fid.final_n=0")
        self.real_set = trainer.datamodule.train_set
        gen = torch.Generator().manual_seed(self.settings.seed)
        self.order = torch.randperm(len(self.real_set), generator=gen).tolist()
        self.record = {"history": []}
        self.final_done = False
        if self.run.eval.joinpath("fid.json").is_file():  # resumed: keep the epochs already done
            # (the loops are restored after on_fit_start: an epoch that is redone replaces its entry then)
            old = json.loads(self.run.eval.joinpath("fid.json").read_text())
            self.record["history"] = list(old.get("history", []))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        every = self.settings.every_n_epochs
        epoch = trainer.current_epoch
        last = epoch + 1 >= (trainer.max_epochs or 0)
        if every == 0 or ((epoch + 1) % every and not last):
            return
        values = None
        if trainer.is_global_zero:
            result = self.evaluate(pl_module, self._ensure_evaluator(), self.settings.n)
            pixel = self.pixel_scores(pl_module)
            entry = {"epoch": epoch, "step": trainer.global_step, **self._summary(result), **pixel}
            self.record["history"] = [h for h in self.record["history"] if h["epoch"] < epoch] + [entry]
            self._write(result)
            values = (result.value, result.kid_mean, pixel)
        fid, kid, pixel = trainer.strategy.broadcast(values, src=0)
        pl_module.log("fid", fid, on_step=False, on_epoch=True, prog_bar=True)
        if kid is not None:
            pl_module.log("kid", kid, on_step=False, on_epoch=True)
        for name, value in pixel.items():
            pl_module.log(name, value, on_step=False, on_epoch=True)

    @torch.no_grad()
    def pixel_scores(self, pl_module: Any) -> dict[str, float]:
        """Pixel diversity and coverage (genlab.eval.pixel_scores) of 500 samples against the held-out
        images, beside each FID, so that their curve over training is in metrics.csv; {} without
        data.holdout (the other splits are trained or validated on)."""
        if not self.data.holdout:
            return {}
        from genlab.eval.gan_quality import real_images
        from genlab.eval.pixel_scores import N_SAMPLES, model_scores

        if self.held_out is None:
            self.held_out, _ = real_images(self.run, N_SAMPLES, self.settings.seed)
        was_training = pl_module.training
        pl_module.eval()
        try:
            scores = model_scores(pl_module.net, self.held_out, N_SAMPLES, self.settings.seed)
        finally:
            pl_module.train(was_training)
        return {"pixel_diversity": scores["diversity"], "pixel_coverage": scores["coverage"]}

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Lightning skips on_train_end when a resumed run's epochs are all done already (a SIGTERM after
        # the last epoch, before the final FID): the final FID is computed here then.
        if not self.final_done:
            self.on_train_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.final_done = True
        if not trainer.is_global_zero or self.settings.final_n == 0:
            return
        evaluator = self._ensure_evaluator()
        n_real = min(self.settings.final_n, len(self.order))
        # The per-epoch real statistics are the first n of the same order: reused when the sizes agree.
        real = evaluator.real if evaluator.real.n == n_real else self._real_stats(n_real)
        final = FIDEvaluator(self.extractor, real, self.settings.batch_size, self.settings.kid_subset_size)
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        current = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        which = "last (in memory)"
        if best and Path(best).is_file():
            pl_module.load_state_dict(load_torch(best, map_location=pl_module.device)["state_dict"])
            which = Path(best).name
        try:
            result = self.evaluate(pl_module, final, self.settings.final_n, noise_seed=FINAL_NOISE_SEED,
                                   description=f"final FID ({which}): {self.settings.final_n} generated images")
        finally:
            pl_module.load_state_dict(current)
        best_entry = min(self.record["history"], key=lambda h: h["fid"]) if self.record["history"] else None
        self.record["final"] = {"checkpoint": which, "epoch": best_entry["epoch"] if best_entry and best else None,
                                "noise_seed": self.settings.seed + FINAL_NOISE_SEED,
                                **self._summary(result)}
        self._write(result)
        self._plot()
        del evaluator

    # --- outputs ------------------------------------------------------------------------------------
    @staticmethod
    def _summary(result: FIDResult) -> dict[str, Any]:
        return {"fid": result.value, "kid_mean": result.kid_mean, "kid_std": result.kid_std,
                "kid_subset_size": result.kid_subset_size, "n_real": result.n_a, "n_fake": result.n_b}

    def _write(self, result: FIDResult) -> None:
        history = self.record["history"]
        self.record.update({
            "extractor": result.extractor, "extractor_id": result.extractor_id, "dims": result.dims,
            "comparable_to_published_fid": result.comparable,
            "note": "" if result.comparable else NOT_COMPARABLE,
            "fallback_reason": self.extractor.fallback_reason if self.extractor is not None else "",
            "best": min(history, key=lambda h: h["fid"]) if history else None,
        })
        ordered = {k: self.record[k] for k in ("extractor", "extractor_id", "dims", "comparable_to_published_fid",
                                              "note", "fallback_reason", "best", "final", "history") if k in self.record}
        atomic_write_json(self.run.eval / "fid.json", ordered)

    def _plot(self) -> None:
        history = self.record["history"]
        if not history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot([h["epoch"] + 1 for h in history], [h["fid"] for h in history], "o-")
        ax.set_xlabel("epoch")
        name = "FID" if self.record.get("comparable_to_published_fid") else "FD (fallback features)"
        ax.set_ylabel(f"{name}, N={history[-1]['n_fake']} vs {history[-1]['n_real']}")
        ax.set_title(self.record.get("extractor", "")[:70] if self.record.get("comparable_to_published_fid")
                     else "FD with fallback features: NOT comparable to published FIDs", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(self.run.plots / "fid.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
