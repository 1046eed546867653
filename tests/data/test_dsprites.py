"""dSprites: index order, factor grids, hand-checked renders, the npz loader, splits, the cache."""

from __future__ import annotations

import hashlib
import sys
import types

import numpy as np
import pytest
import torch

from genlab.data import dsprites as ds
from genlab.errors import GenlabError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))


def one(shape=0, scale=5, orient=0, px=0, py=0) -> np.ndarray:
    return ds.render(np.array([[0, shape, scale, orient, px, py]]))[0]


def bbox(img):
    ys, xs = np.nonzero(img)
    return ys.min(), ys.max(), xs.min(), xs.max()


# --- factors and index order ---------------------------------------------------------------------
def test_index_order_matches_official_formula_and_round_trips():
    idx = np.arange(ds.N_IMAGES)
    classes = ds.index_to_classes(idx)
    # independent truth: C-order ravel over the official sizes, posY fastest
    assert np.array_equal(np.ravel_multi_index(classes.T, ds.LATENT_SIZES), idx)
    assert np.array_equal(ds.classes_to_index(classes), idx)
    assert ds.index_to_classes(1).tolist() == [[0, 0, 0, 0, 0, 1]]
    assert ds.index_to_classes(32).tolist() == [[0, 0, 0, 0, 1, 0]]
    assert ds.index_to_classes(245760).tolist() == [[0, 1, 0, 0, 0, 0]]
    assert ds.classes_to_index([0, 2, 5, 39, 31, 31]).tolist() == [ds.N_IMAGES - 1]
    with pytest.raises(ValueError):
        ds.index_to_classes(ds.N_IMAGES)
    with pytest.raises(ValueError):
        ds.classes_to_index([0, 3, 0, 0, 0, 0])


def test_factor_grids():
    assert ds.LATENT_SIZES == (1, 3, 6, 40, 32, 32) and np.prod(ds.LATENT_SIZES) == ds.N_IMAGES
    v = ds.latent_values([[0, 0, 0, 0, 0, 0], [0, 2, 5, 39, 31, 31], [0, 1, 2, 13, 1, 16]])
    np.testing.assert_allclose(v[0], [1, 1, 0.5, 0, 0, 0])
    np.testing.assert_allclose(v[1], [1, 3, 1.0, 2 * np.pi, 1, 1])
    np.testing.assert_allclose(v[2], [1, 2, 0.7, 13 * 2 * np.pi / 39, 1 / 31, 16 / 31])
    scales = ds.latent_values([[0, 0, s, 0, 0, 0] for s in range(6)])[:, 2]
    np.testing.assert_allclose(scales, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


# --- renders against hand-computed expectations --------------------------------------------------
def test_square_scale1_is_exact_20px_block_at_hand_computed_place():
    # centre 16 px, half side 9.6: pixel centres j + 0.5 in [6.4, 25.6] -> j = 6..25
    img = one(shape=0, scale=5, px=0, py=0)
    expect = np.zeros((64, 64), np.uint8)
    expect[6:26, 6:26] = 1
    assert img.dtype == np.uint8 and np.array_equal(img, expect)
    # posX = 1 -> centre 48: columns 38..57; posY stays 0
    img = one(shape=0, scale=5, px=31, py=0)
    expect = np.zeros((64, 64), np.uint8)
    expect[6:26, 38:58] = 1
    assert np.array_equal(img, expect)


def test_square_scale_half_is_10px():
    y0, y1, x0, x1 = bbox(one(shape=0, scale=0))
    assert (y1 - y0 + 1, x1 - x0 + 1) == (10, 10) and one(shape=0, scale=0).sum() == 100


def test_ellipse_bbox_26_by_14_and_long_axis_horizontal():
    y0, y1, x0, x1 = bbox(one(shape=1, scale=5, px=0, py=0))
    assert (x1 - x0 + 1, y1 - y0 + 1) == (26, 14)
    assert (x0 + x1) / 2 == pytest.approx(15.5) and (y0 + y1) / 2 == pytest.approx(15.5)


def _runs(row):
    return int(np.sum(np.diff(np.r_[0, row.astype(int), 0]) == 1))


def test_heart_points_down_with_two_lobes_on_top():
    img = one(shape=2, scale=5, px=16, py=16)
    y0, y1, x0, x1 = bbox(img)
    assert 19 <= x1 - x0 + 1 <= 20 and 17 <= y1 - y0 + 1 <= 19
    assert _runs(img[y0]) == 2  # the top row crosses both lobes
    assert img[y1].sum() <= 2  # the tip is at the bottom
    widths = img.sum(1)[y0:y1 + 1]
    assert widths.argmax() < len(widths) / 2  # widest part in the upper half


def test_rotation_is_counter_clockwise_on_screen():
    # Heart rotated by ~92 deg (class 10) counter-clockwise: the tip turns from down to right.
    img = one(shape=2, scale=5, orient=10, px=16, py=16)
    y0, y1, x0, x1 = bbox(img)
    assert img[:, x1].sum() <= 2 and _runs(img[:, x0]) == 2
    # Ellipse tilted by ~28 deg: its right end rises (smaller row index) above the centre.
    img = one(shape=1, scale=5, orient=3, px=16, py=16)
    ys, xs = np.nonzero(img)
    cx, cy = xs.mean(), ys.mean()
    assert ys[xs > cx + 5].mean() < cy - 2 and ys[xs < cx - 5].mean() > cy + 2


def test_orientation_0_and_2pi_agree_and_render_is_binary():
    a = ds.render([[0, s, 5, 0, 7, 9] for s in range(3)])
    b = ds.render([[0, s, 5, 39, 7, 9] for s in range(3)])
    assert set(np.unique(a)) == {0, 1}
    assert (a != b).sum() <= 3


def test_render_rejects_bad_classes():
    with pytest.raises(ValueError):
        ds.render([[0, 0, 6, 0, 0, 0]])
    with pytest.raises(ValueError):
        ds.render(np.zeros((2, 5), np.int64))


def test_packed_render_equals_render():
    c = ds.index_to_classes(np.random.default_rng(1).choice(ds.N_IMAGES, 300, replace=False))
    assert np.array_equal(ds.unpack(ds.render_packed(c)), ds.render(c))


# --- the official npz ----------------------------------------------------------------------------
def _write_npz(path, n=40, **drop_or_replace):
    idx = np.random.default_rng(0).choice(ds.N_IMAGES, n, replace=False)
    c = ds.index_to_classes(idx)
    arrays = dict(imgs=ds.render(c), latents_classes=c, latents_values=ds.latent_values(c),
                  metadata=np.array({"latents_sizes": np.array(ds.LATENT_SIZES)}, dtype=object))
    for k, v in drop_or_replace.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez_compressed(path, **arrays)
    return arrays


def test_npz_loader_and_dataset_on_synthetic_official_file(tmp_path):
    p = tmp_path / ds.NPZ_NAME
    arrays = _write_npz(p)
    z = ds.load_npz(p)
    assert np.array_equal(z["imgs"], arrays["imgs"])
    assert np.array_equal(z["latents_classes"], arrays["latents_classes"])
    assert z["metadata"]["latents_sizes"].tolist() == list(ds.LATENT_SIZES)
    tr = ds.DSprites("train", source="npz", root=str(tmp_path))
    va = ds.DSprites("val", source="npz", root=str(p))
    assert len(tr) + len(va) == 40 and len(va) == 4
    img, cls = tr[0]
    row = tr.indices[0]
    assert np.array_equal(img[0].numpy(), arrays["imgs"][row].astype(np.float32))
    assert np.array_equal(cls.numpy(), arrays["latents_classes"][row])


def test_npz_errors_name_the_file_and_fix(tmp_path):
    missing = tmp_path / "nope" / ds.NPZ_NAME
    with pytest.raises(GenlabError, match="genlab data download dsprites") as e:
        ds.load_npz(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(GenlabError, match="genlab data download dsprites"):
        ds.DSprites(source="npz", root=str(tmp_path / "nope"))
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(GenlabError, match="corrupt"):
        ds.load_npz(bad)
    nokey = tmp_path / "nokey.npz"
    _write_npz(nokey, latents_classes=None)
    with pytest.raises(GenlabError, match="latents_classes"):
        ds.load_npz(nokey)
    badshape = tmp_path / "badshape.npz"
    _write_npz(badshape, latents_classes=np.zeros((40, 5), np.int64))
    with pytest.raises(GenlabError, match="unexpected"):
        ds.load_npz(badshape)


def test_download_calls_fetch_and_verifies(tmp_path, monkeypatch):
    calls = []
    payload = b"fake dsprites bytes"

    def fetch(url, dest, sha256=None, progress=True):
        calls.append((url, dest, sha256))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(payload)
        return dest

    monkeypatch.setitem(sys.modules, "genlab.data.download", types.SimpleNamespace(fetch=fetch))
    with pytest.raises(GenlabError, match="MD5"):
        ds.download_dsprites(tmp_path)
    assert not (tmp_path / ds.NPZ_NAME).exists()  # a bad download is not left behind
    monkeypatch.setattr(ds, "DSPRITES_MD5", hashlib.md5(payload).hexdigest())
    got = ds.download_dsprites(tmp_path)
    assert got == tmp_path / ds.NPZ_NAME and got.read_bytes() == payload
    assert calls[-1] == (ds.DSPRITES_URL, tmp_path / ds.NPZ_NAME, ds.DSPRITES_SHA256)
    assert ds.DSPRITES_URL.startswith("https://github.com/deepmind/dsprites-dataset/")


# --- the Dataset ---------------------------------------------------------------------------------
def test_split_is_deterministic_disjoint_and_covers_subset(tmp_path):
    tr = ds.DSprites("train", subset=3000, seed=3)
    va = ds.DSprites("val", subset=3000, seed=3)
    assert len(va) == 300 and len(tr) == 2700
    assert not set(tr.indices) & set(va.indices)
    assert np.array_equal(ds.DSprites("val", subset=3000, seed=3).indices, va.indices)
    assert not np.array_equal(ds.DSprites("val", subset=3000, seed=4).indices, va.indices)
    img, cls = va[5]
    assert img.dtype == torch.float32 and img.shape == (1, 64, 64)
    assert cls.dtype == torch.int64 and cls.shape == (6,)
    # the item's classes are those of its official index, and its image is their render
    assert np.array_equal(cls.numpy(), ds.index_to_classes(va.indices[5])[0])
    assert np.array_equal(img[0].numpy(), ds.render(cls.numpy()[None])[0].astype(np.float32))
    assert va.latent_names == ds.LATENT_NAMES
    # the small-subset fast path renders in memory and never builds the 377 MB cache
    assert not ds.cache_path().exists()


def test_split_indices_fraction():
    va = ds.split_indices(1000, "val", 0.25, seed=0)
    tr = ds.split_indices(1000, "train", 0.25, seed=0)
    assert len(va) == 250 and np.array_equal(np.sort(np.r_[va, tr]), np.arange(1000))


def test_cache_is_atomic_keyed_by_version_and_reloads_equal_render(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "N_IMAGES", 2048)  # the first 2048 images stand in for the whole set
    path = ds.cache_path()
    assert f"v{ds.RENDERER_VERSION}" in path.name
    real = ds.render_packed

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(ds, "render_packed", boom)
    with pytest.raises(RuntimeError):
        ds.generate_all(chunk=512, progress=False)
    assert not path.exists() and list(path.parent.iterdir()) == []  # no half-written file
    monkeypatch.setattr(ds, "render_packed", real)
    assert ds.info()["cache_exists"] is False
    ds.generate_all(chunk=512, progress=False)
    mm = ds.load_all()
    assert isinstance(mm, np.memmap) and mm.shape == (2048, 64, 8)
    rows = np.array([0, 1, 777, 2047])
    assert np.array_equal(ds.unpack(mm[rows]), ds.render(ds.index_to_classes(rows)))
    assert ds.info()["cache_exists"] is True
    # with a cache present the Dataset reads from it (and items still match the renderer)
    va = ds.DSprites("val", subset=100, seed=0)
    img, cls = va[0]
    assert np.array_equal(img[0].numpy(), ds.render(cls.numpy()[None])[0].astype(np.float32))
    monkeypatch.setattr(ds, "RENDERER_VERSION", "test-bump")
    assert ds.cache_path() != path


def test_corrupt_cache_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.npy"
    np.save(p, np.zeros((3, 64, 8), np.uint8))
    with pytest.raises(GenlabError, match="delete it to rebuild"):
        ds.load_all(p)
    with pytest.raises(GenlabError, match="generate_all"):
        ds.load_all(tmp_path / "absent.npy", build=False)


def test_info():
    d = ds.info()
    assert d["count"] == 737280 and d["image_shape"] == (1, 64, 64)
    assert d["factors"]["orientation"]["size"] == 40
    assert d["factors"]["orientation"]["max"] == pytest.approx(2 * np.pi)
    assert "cache_path" in d and d["cache_exists"] is False
    assert ds.info(source="npz")["exists"] is False
