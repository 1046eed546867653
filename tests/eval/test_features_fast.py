"""The tuned FID feature path (issue 15): inference mode + channels_last must not change what is
computed, a folder's statistics are cached by content, the final GAN evaluation reuses the
per-epoch real statistics, and Ctrl-C / SIGTERM stop feature extraction at the next batch.

The independent truth for "the same images" is pytorch-fid's own reader (ImagePathDataset +
ToTensor) on PNGs that torchvision's save_image wrote: in-memory tensors must give exactly the
features those files give.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from pytorch_fid.fid_score import ImagePathDataset
from torchvision import transforms

from genlab.cli import main
from genlab.config import GANFIDConfig, load_config
from genlab.errors import Interrupted
from genlab.eval import features as F
from genlab.eval.fid import FIDEvaluator, Stats, fid_between
from genlab.runs import Run
from genlab.train import fid_callback

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / F.FID_WEIGHTS_FILE
    torch.save(F.he_state_dict(seed=7), path)
    return path


@pytest.fixture(scope="module")
def extractors(weights_file):
    """The 64-d block in both memory layouts."""
    return {cl: F.inception_extractor(weights_file, dims=64, device="cpu", channels_last=cl) for cl in (False, True)}


def _save_pngs(images: torch.Tensor, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        torchvision.utils.save_image(img, folder / f"{i:03d}.png")
    return folder


def _pytorch_fid_read(folder: Path) -> torch.Tensor:
    """The [0,1] tensors pytorch-fid's data loader gives for a folder (its own dataset class)."""
    files = sorted(folder.glob("*.png"))
    ds = ImagePathDataset(files, transforms=transforms.ToTensor())
    return torch.stack([ds[i] for i in range(len(ds))])


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(10, 3, 9, 9, generator=gen), size=(37, 37), mode="bilinear")
    return (smooth + 0.08 * torch.randn(10, 3, 37, 37, generator=gen)).clamp(0, 1)


def test_default_layout_is_channels_last(extractors, weights_file, monkeypatch):
    assert F.inception_extractor(weights_file, dims=64, device="cpu").channels_last is F.DEFAULT_CHANNELS_LAST
    monkeypatch.setenv(F.CHANNELS_LAST_ENV, "0")
    assert F.inception_extractor(weights_file, dims=64, device="cpu").channels_last is False
    assert extractors[True].id != extractors[False].id  # caches never mix the two layouts
    weight = next(p for p in extractors[True].model.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.requires_grad
    # every BatchNorm folded into its convolution (the fast forward), none left to run
    for ex in extractors.values():
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ex.model.modules())
        assert ":bn-folded" in ex.id


@pytest.mark.parametrize("channels_last", [False, True])
def test_tensor_batch_is_bit_identical_to_png_route(tmp_path, images, extractors, channels_last):
    ex = extractors[channels_last]
    folder = _save_pngs(images, tmp_path / "pngs")
    from_files = F.features_from_tensors(ex, _pytorch_fid_read(folder), batch_size=4)
    assert np.array_equal(F.features_from_folder(ex, folder, batch_size=4), from_files)
    # An NCHW tensor, the same in channels_last memory, and a list of odd-sized batches: all
    # exactly the PNG route's features (quantised like save_image, same forward).
    assert np.array_equal(F.features_from_tensors(ex, images, batch_size=4), from_files)
    cl_input = images.contiguous(memory_format=torch.channels_last)
    assert np.array_equal(F.features_from_tensors(ex, cl_input, batch_size=4), from_files)
    assert np.array_equal(F.features_from_tensors(ex, [images[:3], images[3:]], batch_size=4), from_files)
    # The check has teeth: without the uint8 quantisation the features would differ.
    with torch.inference_mode():
        raw = ex.model(images[:4].contiguous(memory_format=torch.channels_last if channels_last else
                                             torch.contiguous_format))[0].mean((2, 3)).numpy()
    assert not np.array_equal(raw, from_files[:4])


def test_layouts_agree_to_round_off(images, extractors):
    a = F.features_from_tensors(extractors[False], images)
    b = F.features_from_tensors(extractors[True], images)
    assert np.abs(a).max() > 1e-3
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_full_network_channels_last_matches_nchw_and_png(tmp_path, images, weights_file):
    # The 2048-d network (where channels_last pays): a few images only, ~0.5 CPU-s each.
    few = images[:3]
    nchw = F.inception_extractor(weights_file, dims=2048, device="cpu", channels_last=False)
    cl = F.inception_extractor(weights_file, dims=2048, device="cpu", channels_last=True)
    folder = _save_pngs(few, tmp_path / "pngs")
    png = F.features_from_tensors(cl, _pytorch_fid_read(folder))
    assert np.array_equal(F.features_from_tensors(cl, few), png)
    ref = F.features_from_tensors(nchw, few)
    assert np.isfinite(ref).all() and np.abs(ref).max() > 1e-4
    np.testing.assert_allclose(png, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def _counting(monkeypatch) -> dict:
    calls = {"images": 0}
    original = F.FeatureExtractor.__call__

    def counted(self, batch):
        calls["images"] += len(batch)
        return original(self, batch)

    monkeypatch.setattr(F.FeatureExtractor, "__call__", counted)
    return calls


def test_folder_statistics_are_cached_by_content(tmp_path, monkeypatch, images, extractors, weights_file):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    ex = extractors[True]
    real = _save_pngs(images[:6], tmp_path / "real")
    fake = _save_pngs(images[6:].flip(3), tmp_path / "fake")
    calls = _counting(monkeypatch)
    cold = fid_between(real, fake, extractor=ex)
    assert calls["images"] == 10
    warm = fid_between(real, fake, extractor=ex)
    assert calls["images"] == 10  # both sides from the cache: no forward pass at all
    assert warm.value == cold.value and warm.kid_mean == cold.kid_mean
    uncached = fid_between(real, fake, extractor=ex, cache=False)
    assert calls["images"] == 20 and uncached.value == pytest.approx(cold.value, rel=1e-12)
    # A rewritten image (same name, other pixels) misses the cache and changes the value.
    torchvision.utils.save_image(images[5].flip(2), real / "005.png")
    changed = fid_between(real, fake, extractor=ex)
    assert calls["images"] == 26 and changed.value != cold.value
    other = F.inception_extractor(weights_file, dims=64, device="cpu", channels_last=False)
    fid_between(real, fake, extractor=other)  # another extractor id: recomputed, not mixed
    assert calls["images"] == 36


def test_features_stop_when_asked(extractors):
    seen = []

    def endless():
        for i in itertools.count():
            seen.append(i)
            yield torch.rand(3, 3, 32, 32)

    with pytest.raises(Interrupted, match="after 6 images"):
        F.features_from_tensors(extractors[True], endless(), batch_size=3, should_stop=lambda: len(seen) > 2)


def test_sigterm_stops_genlab_fid_inside_feature_extraction(tmp_path, monkeypatch, capsys, images, weights_file):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    big = torch.cat([images] * 4)  # 40 images: 10 batches of 4
    a = _save_pngs(big, tmp_path / "a")
    b = _save_pngs(big.flip(3), tmp_path / "b")
    calls = {"n": 0}
    original = F.FeatureExtractor.__call__

    def kill_on_second_batch(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill <pid>` does while the features run
        return out

    monkeypatch.setattr(F.FeatureExtractor, "__call__", kill_on_second_batch)
    code = main(["fid", str(a), str(b), "--weights", str(weights_file), "--dims", "64", "--batch-size", "4"])
    assert code == 130 and calls["n"] == 2  # stopped right there, 8 of 80 images done
    assert "interrupted" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing half-computed was cached


class _TinyGenerator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3 * 16 * 16)

    def noise(self, n, gen):
        return torch.randn(n, 4, generator=gen)

    def sample(self, z):
        return torch.sigmoid(self.lin(z)).view(-1, 3, 16, 16)


class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _TinyGenerator()

    @property
    def device(self):
        return torch.device("cpu")


def test_final_gan_evaluation_reuses_the_per_epoch_real_statistics(tmp_path, monkeypatch, images, extractors):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    data = load_config("dcgan-bitmoji-quick").data
    cb = fid_callback.FIDCallback(GANFIDConfig(n=8, final_n=8, batch_size=4, dims=64), data,
                                  extractor=extractors[True])
    cb.run = Run(tmp_path / "run")
    cb.real_set = [(img, 0) for img in images]
    cb.order = list(range(len(images)))
    cb.record = {"history": []}
    computed = []
    real_cached_stats = fid_callback.cached_stats
    monkeypatch.setattr(fid_callback, "cached_stats", lambda *a, **k: computed.append(a[3]) or real_cached_stats(*a, **k))
    module = _Module()
    per_epoch = cb.evaluate(module, cb._ensure_evaluator(), 8)
    trainer = SimpleNamespace(is_global_zero=True, checkpoint_callback=None, received_sigterm=False)
    cb.on_train_end(trainer, module)
    assert computed == [8]  # real statistics once, for the per-epoch FID; the final one reused them
    final = cb.record["final"]
    assert (final["n_real"], final["n_fake"], final["noise_seed"]) == (8, 8, 2)
    # fresh noise: not the per-epoch images again (their FID would come out identical)
    assert final["fid"] != per_epoch.value
    again = cb.evaluate(module, FIDEvaluator(cb.extractor, cb.evaluator.real, 4), 8, noise_seed=2)
    assert final["fid"] == again.value
    # and with final_n above n, the larger real set is computed (once, then cached)
    cb.settings = GANFIDConfig(n=8, final_n=10, batch_size=4, dims=64)
    cb.on_train_end(trainer, module)
    assert computed == [8, 10] and cb.record["final"]["n_real"] == 10
    assert isinstance(cb.evaluator.real, Stats)
