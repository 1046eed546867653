"""The memory-mapped image cache: same pixels as decoding, no decoding on reuse, rebuilt when the
files or the transform change, never half-written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.data.test_images import _private_cache, bitmoji_root, noise_image  # noqa: F401 (fixtures)
from torch.utils.data import DataLoader

from genlab.data import cache as cache_mod
from genlab.data.images import image_dataset
from genlab.data.transforms import ImageTransform
from genlab.errors import GenlabError


def _cache_dirs() -> list[Path]:
    root = Path(os.environ["GENLAB_CACHE"]) / "images"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = ImageTransform.load

    def load(self, path):
        calls.append(Path(path).name)
        return real(self, path)

    monkeypatch.setattr(ImageTransform, "load", load)
    return calls


def _ds(root, **kw):
    return image_dataset("bitmoji", root, "all", image_size=8, cache=True, progress=False, **kw)


def test_cache_holds_exactly_the_decoded_pixels_and_reopens_without_decoding(bitmoji_root, count_decodes):
    plain = image_dataset("bitmoji", bitmoji_root, "all", image_size=8)
    expected = torch.stack([plain.uint8(i) for i in range(len(plain))])
    count_decodes.clear()
    cached = _ds(bitmoji_root)
    assert len(count_decodes) == 10
    assert torch.equal(torch.stack([cached.uint8(i) for i in range(10)]), expected)
    count_decodes.clear()
    again = _ds(bitmoji_root)
    x, y = next(iter(DataLoader(again, batch_size=10, shuffle=False)))  # batched __getitems__ path
    assert count_decodes == []  # no JPEG decoded: everything came from the memory map
    assert torch.equal(x, expected.float() / 255) and y.tolist() == plain.targets.tolist()
    assert len(_cache_dirs()) == 1


@pytest.mark.parametrize("change", ["edit", "add", "remove", "transform"])
def test_any_change_rebuilds_and_the_stale_cache_is_removed(bitmoji_root, count_decodes, change):
    first = _ds(bitmoji_root)
    old_dir, old_pixels = first.cache.folder, first.uint8(2)
    count_decodes.clear()
    kw = {}
    if change == "edit":
        path = bitmoji_root / "images" / "0002.jpg"
        noise_image(np.random.default_rng(9), 48, 48).save(path)
        os.utime(path, ns=(1, 1))  # a different mtime and content
    elif change == "add":
        noise_image(np.random.default_rng(9), 48, 48).save(bitmoji_root / "images" / "0010.jpg")
    elif change == "remove":
        (bitmoji_root / "images" / "0009.jpg").unlink()
    else:
        kw = {"crop": 0.5}
    second = _ds(bitmoji_root, **kw)
    assert len(count_decodes) == len(second) and second.cache.folder != old_dir
    assert _cache_dirs() == [second.cache.folder]  # the stale one is gone
    if change == "edit":
        fresh = ImageTransform(size=8).load(bitmoji_root / "images" / "0002.jpg")
        assert torch.equal(second.uint8(2), fresh) and not torch.equal(old_pixels, fresh)


def test_failed_build_leaves_no_cache_behind(bitmoji_root):
    bad = bitmoji_root / "images" / "0004.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(GenlabError, match=r"0004\.jpg: corrupt or truncated"):
        _ds(bitmoji_root)
    root = Path(os.environ["GENLAB_CACHE"]) / "images"
    assert not root.exists() or list(root.iterdir()) == []  # neither a cache nor a temporary folder


def test_skip_corrupt_with_cache_and_a_damaged_cache_is_rebuilt(bitmoji_root, count_decodes):
    (bitmoji_root / "images" / "0004.jpg").write_text("not a picture")
    ds = _ds(bitmoji_root, skip_corrupt=True)
    assert len(ds) == 9 and len(ds.skipped) == 1 and "0004.jpg" in ds.skipped[0]
    assert [Path(f).name for f in ds.files] == [f"{i:04d}.jpg" for i in range(10) if i != 4]
    fifth = ImageTransform(size=8).load(bitmoji_root / "images" / "0005.jpg")
    assert torch.equal(ds.uint8(4), fifth)
    (ds.cache.folder / "images.npy").write_bytes(b"garbage")
    count_decodes.clear()
    again = _ds(bitmoji_root, skip_corrupt=True)
    assert len(count_decodes) == 10 and torch.equal(again.uint8(4), fifth)


def test_parallel_build_error_is_one_line_naming_the_file(bitmoji_root):
    (bitmoji_root / "images" / "0007.jpg").write_text("not a picture")
    with pytest.raises(GenlabError) as info:
        _ds(bitmoji_root, num_workers=1)
    message = str(info.value)
    assert "\n" not in message and message.endswith("to skip unreadable images") and "0007.jpg" in message


def test_cache_key_covers_source_files_and_transform(tmp_path):
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"{i}.png"))
        noise_image(np.random.default_rng(i), 4, 4).save(files[-1])
    t = ImageTransform(size=4)
    key = cache_mod.cache_key("s", files, t)
    assert key == cache_mod.cache_key("s", list(files), ImageTransform(size=4))
    assert len({key, cache_mod.cache_key("s2", files, t), cache_mod.cache_key("s", files[:2], t),
                cache_mod.cache_key("s", files, ImageTransform(size=5)),
                cache_mod.cache_key("s", files, ImageTransform(size=4, channels=1))}) == 5


def test_a_killed_build_is_cleaned_up(bitmoji_root):
    first = _ds(bitmoji_root)
    dead = first.cache.folder.with_name(f".{first.cache.folder.name}.999999999.tmp")  # no such pid
    live = first.cache.folder.with_name(f".{first.cache.folder.name}.{os.getppid()}.tmp")  # our parent: alive
    dead.mkdir()
    live.mkdir()
    shutil.rmtree(first.cache.folder)
    _ds(bitmoji_root)
    assert not dead.exists() and live.exists()


def test_a_cache_built_with_skip_corrupt_does_not_skip_for_a_run_without_it(bitmoji_root):
    bad = bitmoji_root / "images" / "0004.jpg"
    bad.write_bytes(bad.read_bytes()[:100])  # a truncated JPEG
    assert len(_ds(bitmoji_root, skip_corrupt=True)) == 9
    with pytest.raises(GenlabError, match=r"0004\.jpg: corrupt or truncated"):
        _ds(bitmoji_root, skip_corrupt=False)  # the same cache key, but this run must stop at the bad file
