"""dSprites: a faithful renderer of the official 737,280 images, a loader for the official npz,
and a torch Dataset over either.

Geometry (fitted to 20,000 real images; see benchmarks/dsprites_render.py for the fidelity):
a pixel is on when its centre lies inside the sprite (no anti-aliasing, like the originals).
Coordinates are in pixels, pixel (row i, col j) has its centre at (j + 0.5, i + 0.5), y down.
The sprite centre is at 16 + 32 * pos (pos in [0, 1]); the shape is scaled by `scale` and
rotated counter-clockwise on screen by `orientation`. At scale 1 the square has side 19.2 px,
the ellipse semi-axes 12.76 x 7.22 px, and the heart (pointing down) is the classic parametric
heart x = sin^3 t, y = -(13 cos t - k1 cos 2t - k2 cos 3t - k3 cos 4t) fitted into a
19.2 x 19.15 px box, 0.25 px below the centre.
"""

from __future__ import annotations

import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genlab import safe_load
from genlab.errors import GenlabError
from genlab.io import atomic_path, cache_dir, file_digest

# --- factors and index order ---------------------------------------------------------------------
LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
N_IMAGES = 737280
SHAPE_NAMES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64
# index = classes . bases; posY varies fastest (official order).
_BASES = np.array([737280, 245760, 40960, 1024, 32, 1], dtype=np.int64)

_GRIDS = (
    np.array([1.0]),
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)

# --- download -----------------------------------------------------------------------------------
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_URL = f"https://github.com/deepmind/dsprites-dataset/raw/master/{NPZ_NAME}"
# No public SHA-256 of the npz could be found to pin; the MD5 below is the one pinned by many
# independent loaders (torchvision-style datasets, disentanglement libraries), so downloads are
# still verified, by MD5, after `fetch`.
DSPRITES_SHA256: str | None = None
DSPRITES_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"

# --- renderer ------------------------------------------------------------------------------------
# Bump whenever the geometry changes: it keys the cache file, so a stale cache is rebuilt.
RENDERER_VERSION = "1"

_CENTRE0, _SPAN = 16.0, 32.0  # centre = 16 + 32 * pos, in pixel units
_SQUARE_HALF = 9.6
_ELLIPSE_A, _ELLIPSE_B = 12.763, 7.216
# The fit lands on the textbook heart (13, 5, 2, 1); the tiny deviations keep edge pixels exact.
_HEART_K = (5.00229, 1.99795, 0.99989)  # cos 2t, cos 3t, cos 4t coefficients (13 for cos t)
_HEART_HALF_W, _HEART_HALF_H, _HEART_DY = 9.59538, 9.57535, 0.24547
_WIN = 32  # every sprite fits a 32x32 window around its centre (largest radius ~13.6 px)


def _heart_y_affine() -> tuple[float, float]:
    """Map the raw parametric y range (lobe tops .. tip) onto [-H + dy, H + dy] pixels."""
    k1, k2, k3 = _HEART_K
    c = np.linspace(0.0, 1.0, 20001)
    top = float(np.min(_heart_raw_upper(c)))
    tip = 13.0 + k1 - k2 + k3
    a = 2 * _HEART_HALF_H / (tip - top)
    return a, -_HEART_HALF_H + _HEART_DY - a * top


def _heart_raw_upper(c: np.ndarray) -> np.ndarray:
    # y(t) on the branch t in [0, pi/2] (notch to widest point), written with c = cos t
    k1, k2, k3 = _HEART_K
    c2 = c * c
    return -(13 * c - k1 * (2 * c2 - 1) - k2 * c * (4 * c2 - 3) - k3 * (8 * c2 * c2 - 8 * c2 + 1))


_HEART_A, _HEART_B = _heart_y_affine()


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of points (u, v) (sprite frame, scale 1, pixels, v down) inside a shape."""
    if shape == 0:
        return (np.abs(u) <= _SQUARE_HALF) & (np.abs(v) <= _SQUARE_HALF)
    if shape == 1:
        return (u * (1 / _ELLIPSE_A)) ** 2 + (v * (1 / _ELLIPSE_B)) ** 2 <= 1
    # Heart: x = W sin^3 t is monotone on each half-branch, so for a given |u| the boundary has
    # exactly one upper point (t in [0, pi/2]) and one lower point (pi - t): a closed form test.
    k1, k2, k3 = _HEART_K
    s = np.cbrt(np.minimum(np.abs(u) * (1 / _HEART_HALF_W), 1.0))
    c = np.sqrt(1 - s * s)
    c2 = c * c
    even = k1 * (2 * c2 - 1) + k3 * (8 * c2 * c2 - 8 * c2 + 1)
    odd = c * (13 - k2 * (4 * c2 - 3))
    upper = _HEART_A * (even - odd) + _HEART_B
    lower = _HEART_A * (even + odd) + _HEART_B
    return (np.abs(u) <= _HEART_HALF_W) & (v >= upper) & (v <= lower)


def _check_classes(classes: Any) -> np.ndarray:
    c = np.asarray(classes)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] != 6 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"latent classes must be an int array of shape (N, 6), got {c.dtype} {c.shape}")
    if c.size and ((c < 0).any() or (c >= np.array(LATENT_SIZES)).any()):
        raise ValueError(f"latent classes out of range: sizes are {LATENT_SIZES}")
    return c.astype(np.int64, copy=False)


def _render_chunk(c: np.ndarray) -> np.ndarray:
    n = len(c)
    scale = _GRIDS[2][c[:, 2]]
    theta = _GRIDS[3][c[:, 3]]
    cx = _CENTRE0 + _SPAN * _GRIDS[4][c[:, 4]]
    cy = _CENTRE0 + _SPAN * _GRIDS[5][c[:, 5]]
    # Window origin: the sprite centre sits 16..17 px inside a 32 px window.
    ox = np.clip(np.floor(cx).astype(np.int64) - _WIN // 2, 0, IMAGE_SIZE - _WIN)
    oy = np.clip(np.floor(cy).astype(np.int64) - _WIN // 2, 0, IMAGE_SIZE - _WIN)
    ar = np.arange(_WIN) + 0.5
    dx = ox[:, None] + ar - cx[:, None]  # (n, W) column offsets from the centre
    dy = oy[:, None] + ar - cy[:, None]  # (n, W) row offsets
    # Image offset = R(-theta) (u, v) * scale, so u, v = R(theta) (dx, dy) / scale.
    cs = (np.cos(theta) / scale)[:, None]
    sn = (np.sin(theta) / scale)[:, None]
    u = (cs * dx)[:, None, :] - (sn * dy)[:, :, None]
    v = (sn * dx)[:, None, :] + (cs * dy)[:, :, None]
    win = np.empty((n, _WIN, _WIN), dtype=bool)
    for shape in range(3):
        m = c[:, 1] == shape
        if m.any():
            win[m] = _inside(shape, u[m], v[m])
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    rows = oy[:, None, None] + np.arange(_WIN)[None, :, None]
    cols = ox[:, None, None] + np.arange(_WIN)[None, None, :]
    out[np.arange(n)[:, None, None], rows, cols] = win
    return out


def render(classes: Any, chunk: int = 1024) -> np.ndarray:
    """Render dSprites images from latent classes (N, 6) ints -> uint8 (N, 64, 64) in {0, 1}."""
    c = _check_classes(classes)
    out = np.empty((len(c), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    _map_chunks(c, chunk, out, lambda cc: _render_chunk(cc))
    return out


def render_packed(classes: Any, chunk: int = 1024) -> np.ndarray:
    """Like `render`, bit-packed along rows: uint8 (N, 64, 8); 8x less memory."""
    c = _check_classes(classes)
    out = np.empty((len(c), IMAGE_SIZE, IMAGE_SIZE // 8), dtype=np.uint8)
    _map_chunks(c, chunk, out, lambda cc: np.packbits(_render_chunk(cc), axis=-1))
    return out


def _map_chunks(c: np.ndarray, chunk: int, out: np.ndarray, fn) -> None:
    # Small chunks keep the float temporaries in cache; numpy releases the GIL, so threads
    # give a near-linear speed-up on the whole set.
    starts = range(0, len(c), chunk)

    def work(i: int) -> None:
        out[i:i + chunk] = fn(c[i:i + chunk])

    workers = min(len(starts), os.cpu_count() or 1, 8)
    if workers <= 1:
        for i in starts:
            work(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, starts))


def unpack(packed: np.ndarray) -> np.ndarray:
    """Inverse of the row bit-packing used by the cache: (..., 64, 8) -> uint8 (..., 64, 64)."""
    return np.unpackbits(np.asarray(packed), axis=-1)


# --- factors -------------------------------------------------------------------------------------
def latent_values(classes: Any) -> np.ndarray:
    """Official latent values (N, 6) float64 for latent classes (N, 6)."""
    c = _check_classes(classes)
    return np.stack([_GRIDS[k][c[:, k]] for k in range(6)], axis=1)


def classes_to_index(classes: Any) -> np.ndarray:
    """Index into the official image order (N,) int64."""
    return _check_classes(classes) @ _BASES


def index_to_classes(idx: Any) -> np.ndarray:
    """Latent classes (N, 6) int64 of official image indices."""
    i = np.atleast_1d(np.asarray(idx))
    if not np.issubdtype(i.dtype, np.integer) or (i < 0).any() or (i >= N_IMAGES).any():
        raise ValueError(f"dSprites indices must be integers in [0, {N_IMAGES})")
    i = i.astype(np.int64)
    return np.stack([(i // b) % s for b, s in zip(_BASES, LATENT_SIZES)], axis=1)


# --- whole-set cache -----------------------------------------------------------------------------
def cache_path() -> Path:
    """Where the packed render of all images lives; keyed by the renderer version."""
    return cache_dir("dsprites") / f"dsprites_render_v{RENDERER_VERSION}.npy"


def generate_all(path: str | os.PathLike | None = None, chunk: int = 16384,
                 progress: bool = True) -> Path:
    """Render all 737,280 images once into a bit-packed .npy (N, 64, 8) (~377 MB), atomically."""
    path = Path(path) if path is not None else cache_path()
    classes = index_to_classes(np.arange(N_IMAGES))
    with atomic_path(path) as tmp:
        # The temp name has no .npy suffix, so open_memmap writes exactly where asked.
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                       shape=(N_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8))
        starts = range(0, N_IMAGES, chunk)
        if progress:
            from rich.progress import track

            starts = track(starts, description="rendering dSprites", total=len(starts))
        for i in starts:
            mm[i:i + chunk] = render_packed(classes[i:i + chunk])
        mm.flush()
        del mm
    return path


def load_all(path: str | os.PathLike | None = None, build: bool = True) -> np.ndarray:
    """Memory-mapped packed images (737280, 64, 8) uint8, built first if missing and `build`."""
    path = Path(path) if path is not None else cache_path()
    if not path.exists():
        if not build:
            raise GenlabError(f"{path}: no rendered dSprites cache; build it with "
                              "genlab.data.dsprites.generate_all()")
        generate_all(path)
    try:
        mm = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise GenlabError(f"{path}: unreadable dSprites cache ({e}); delete it to rebuild") from e
    if mm.shape != (N_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8) or mm.dtype != np.uint8:
        raise GenlabError(f"{path}: dSprites cache has shape {mm.shape} {mm.dtype}; delete it to rebuild")
    return mm


# --- the official npz ----------------------------------------------------------------------------
def default_root() -> Path:
    return cache_dir("dsprites")


def npz_path(root: str | os.PathLike | None = None) -> Path:
    """`root` may be the npz itself or the folder holding it."""
    p = Path(root) if root is not None else default_root()
    return p if p.suffix == ".npz" else p / NPZ_NAME


def metadata() -> dict[str, Any]:
    """The official npz's metadata, from genlab's own table: the file's copy is a pickle (it could run
    code), so it is never read."""
    return {"latents_names": LATENT_NAMES, "latents_sizes": np.array(LATENT_SIZES),
            "latents_possible_values": {name: g.copy() for name, g in zip(LATENT_NAMES, _GRIDS)},
            "shapes": SHAPE_NAMES}


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the official npz without pickle: dict with imgs (N, 64, 64) uint8, latents_classes (N, 6)
    int64, latents_values (N, 6) float64 and metadata (dict, genlab's table: `metadata()`)."""
    path = Path(path)
    if not path.exists():
        raise GenlabError(f"{path}: dSprites npz not found; run `genlab data download dsprites` "
                          "or use data.source=render")
    if not zipfile.is_zipfile(path):
        raise GenlabError(f"{path}: corrupt dSprites npz (not a zip archive); delete it and run "
                          "`genlab data download dsprites`")
    arrays = safe_load.load_npz(path, "dSprites npz", keys=("imgs", "latents_classes", "latents_values"),
                                fix="delete it and run `genlab data download dsprites`")
    missing = {"imgs", "latents_classes", "latents_values"} - set(arrays)
    if missing:
        raise GenlabError(f"{path}: not the official dSprites npz (missing keys "
                          f"{sorted(missing)}); re-download with `genlab data download dsprites`")
    imgs, classes, values = arrays["imgs"], arrays["latents_classes"], arrays["latents_values"]
    n = len(imgs)
    if (imgs.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or classes.shape != (n, 6)
            or values.shape != (n, 6) or not np.issubdtype(classes.dtype, np.integer)):
        raise GenlabError(f"{path}: unexpected dSprites arrays (imgs {imgs.shape}, latents_classes "
                          f"{classes.shape}, latents_values {values.shape}); expected (N, 64, 64), "
                          "(N, 6), (N, 6); re-download with `genlab data download dsprites`")
    if ((classes < 0) | (classes >= np.array(LATENT_SIZES))).any():
        raise GenlabError(f"{path}: latents_classes out of range {LATENT_SIZES}; "
                          "re-download with `genlab data download dsprites`")
    return {"imgs": imgs.astype(np.uint8, copy=False), "latents_classes": classes.astype(np.int64),
            "latents_values": values, "metadata": metadata()}


def download_dsprites(root: str | os.PathLike | None = None) -> Path:
    """Fetch the official npz into `root` (default: the genlab cache) and verify it."""
    from genlab.data.download import fetch

    dest = npz_path(root)
    got = Path(fetch(DSPRITES_URL, dest, sha256=DSPRITES_SHA256))
    if DSPRITES_SHA256 is None and file_digest(got, "md5") != DSPRITES_MD5:
        got.unlink(missing_ok=True)
        raise GenlabError(f"{dest}: downloaded file failed the MD5 check (expected {DSPRITES_MD5}); "
                          "it was deleted, run `genlab data download dsprites` again")
    return got


# --- torch Dataset -------------------------------------------------------------------------------
# Below this many images a missing cache is not built: the subset is rendered in memory instead
# (seconds), so quick runs and the demo never pay for the whole set.
_SUBSET_RENDER_LIMIT = 200_000


def split_indices(n: int, split: str, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Positions 0..n-1 of one split: a seeded permutation, the first round(n*f) are val."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, 0x5D5]).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[:n_val] if split == "val" else perm[n_val:])


class DSprites(Dataset):
    """dSprites images `(float32 (1, 64, 64) in [0, 1], int64 latent classes (6,))`.

    source="render" draws the images with this module's renderer (cached packed on disk for the
    whole set); source="npz" reads the official file from `root`. `subset=N` first keeps a seeded
    random N images, then the split is taken within them.
    """

    latent_names = LATENT_NAMES
    latent_sizes = LATENT_SIZES

    def __init__(self, split: str = "train", source: str = "render", root: str | None = None,
                 val_fraction: float = 0.1, seed: int = 0, subset: int | None = None):
        if source not in ("render", "npz"):
            raise GenlabError(f"data.source={source!r}: dSprites source must be 'render' or 'npz'")
        self.split, self.source = split, source
        npz = load_npz(npz_path(root)) if source == "npz" else None
        n_total = len(npz["imgs"]) if npz is not None else N_IMAGES
        if subset is not None:
            if subset <= 0 or subset > n_total:
                raise GenlabError(f"data.subset={subset}: must be in 1..{n_total} for dSprites")
            rows = np.sort(np.random.default_rng([seed, 0xD5]).choice(n_total, subset, replace=False))
        else:
            rows = np.arange(n_total)
        rows = rows[split_indices(len(rows), split, val_fraction, seed)]
        self.indices = rows  # rows of the official order (or of the npz)
        if npz is not None:
            self._packed = np.packbits(npz["imgs"][rows], axis=-1)
            self._classes = npz["latents_classes"][rows]
        else:
            self._classes = index_to_classes(rows) if len(rows) else np.zeros((0, 6), np.int64)
            path = Path(root) if root is not None and Path(root).suffix == ".npy" else cache_path()
            if path.exists() or subset is None or subset > _SUBSET_RENDER_LIMIT:
                self._packed = load_all(path)  # memmap; items are read on demand
                self._rows = rows
                return
            self._packed = render_packed(self._classes)
        self._rows = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self._rows[i] if self._rows is not None else i
        img = np.unpackbits(np.asarray(self._packed[row]), axis=-1).astype(np.float32)
        return torch.from_numpy(img)[None], torch.from_numpy(self._classes[i].copy())

    # --- the device-resident path (genlab.train.device_data) ---------------------------------
    def packed_images(self) -> np.ndarray:
        """The split's images bit-packed along rows, in item order: uint8 (N, 64, 8), a copy (read from
        the memory-mapped cache when the whole set is cached)."""
        if self._rows is None:
            return np.ascontiguousarray(self._packed)
        return np.ascontiguousarray(self._packed[self._rows])

    @property
    def classes(self) -> np.ndarray:
        """Latent classes (N, 6) int64 of the split's images, in item order (the items' targets)."""
        return self._classes


_BIT_SHIFTS = (7, 6, 5, 4, 3, 2, 1, 0)  # np.unpackbits' default (big-endian) bit order


def unpack_to_float(packed: torch.Tensor) -> torch.Tensor:
    """Row bit-packed images (N, 64, 8) uint8, on any device -> float32 (N, 1, 64, 64) in {0, 1}: the
    same values as the Dataset's items, decoded where the tensor lives (e.g. on the GPU)."""
    shifts = torch.tensor(_BIT_SHIFTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1  # (N, 64, 8, 8)
    return bits.reshape(*packed.shape[:-1], packed.shape[-1] * 8).unsqueeze(1).to(torch.float32)


# --- info ----------------------------------------------------------------------------------------
def info(source: str = "render", root: str | None = None) -> dict[str, Any]:
    """What `genlab data info dsprites` prints."""
    factors = {name: {"size": size, "min": float(g.min()), "max": float(g.max())}
               for name, size, g in zip(LATENT_NAMES, LATENT_SIZES, _GRIDS)}
    d: dict[str, Any] = {
        "name": "dsprites", "source": source, "count": N_IMAGES,
        "image_shape": (1, IMAGE_SIZE, IMAGE_SIZE), "factors": factors,
        "shapes": SHAPE_NAMES,
    }
    if source == "npz":
        p = npz_path(root)
        d.update(path=str(p), exists=p.exists(), url=DSPRITES_URL, md5=DSPRITES_MD5)
    else:
        p = cache_path()
        d.update(renderer_version=RENDERER_VERSION, cache_path=str(p), cache_exists=p.exists())
    return d
