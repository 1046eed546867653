"""Inception-v3 pool features for FID/KID, computed exactly as `python -m pytorch_fid` does.

The network is pytorch-fid's own definition (`InceptionV3` over `fid_inception_v3`); the weights
come from a local file, or from the torch hub cache, where they are downloaded and verified on
first use (`resolve_weights`, through `genlab.eval.fid_weights`; never with $GENLAB_OFFLINE=1).
Images are quantised to uint8 the way
`torchvision.utils.save_image` writes a PNG, so in-memory tensors and PNG folders give the same
features.

Two extractors:
- `inception_extractor(weights)`: the published FID network (`pt_inception-2015-12-05-6726825d.pth`).
- `fallback_extractor(real_images, seed)`: the same network with seeded He-initialised weights
  and BatchNorm statistics calibrated on real images, for machines without the weights file.
  Its numbers are NOT comparable to published FIDs; every label and id says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image, UnidentifiedImageError
from pytorch_fid import inception as _pfid_inception
from pytorch_fid.fid_score import IMAGE_EXTENSIONS
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
from torch.nn.utils.fusion import fuse_conv_bn_eval

from genlab.defaults import FID, FID_DIMS
from genlab.errors import GenlabError, Interrupted
from genlab.eval.fid_weights import OFFLINE_ENV, SHA256_ENV, URL_ENV, download_weights, offline
from genlab.io import file_digest
from genlab.progress import progress
from genlab.safe_load import first_line, refusal, wants_code

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_ENV = "GENLAB_FID_WEIGHTS"
HUB_SOURCE = "the torch hub cache"
DIMS = FID_DIMS  # the keys of pytorch-fid's InceptionV3.BLOCK_INDEX_BY_DIM (a test checks they agree)
FALLBACK_LABEL = "fallback: NOT comparable to published FID"
# Calibrating BatchNorm needs a few hundred images, not the whole dataset.
MAX_CALIBRATION_IMAGES = 500
# channels_last Inception forward: 1.5x more images per CPU-second than NCHW on this project's
# 2-core AVX-512 CPU at batch 32-64 (benchmarks/fid_bench.py --tune); GENLAB_FID_CHANNELS_LAST=0 turns it off.
DEFAULT_CHANNELS_LAST = True
CHANNELS_LAST_ENV = "GENLAB_FID_CHANNELS_LAST"

__all__ = [
    "FID_WEIGHTS_FILE", "FID_WEIGHTS_URL", "DIMS", "FeatureExtractor", "hub_weights_path",
    "resolve_weights", "download_inception_weights", "extractor_choice", "FIDNetwork", "FID_NETWORK",
    "check_weights_file", "pytorch_fid_shapes", "weights_url", "inception_extractor", "fallback_extractor", "quantize",
    "list_images", "load_folder", "iter_folder", "features_from_tensors", "features_from_folder",
    "fast_layout", "folder_digest",
]


# ----------------------------------------------------------------------------- preprocessing

def quantize(images: torch.Tensor) -> torch.Tensor:
    """[0,1] float NCHW -> the float tensor ToTensor() gives after a PNG round trip.

    Same rounding as `torchvision.utils.save_image` (x*255 + 0.5, clamp, truncate to uint8),
    then the same `/255` as `ToTensor`, so the two routes are bit-identical.
    """
    q = images.detach().float().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return q.to(torch.float32).div(255)


def _check_batch(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise GenlabError(f"FID expects image batches shaped N x 3 x H x W (or N x 1 x H x W), got {shape}")
    if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise GenlabError(
            f"FID expects images in [0, 1], got values in [{images.min().item():.3g}, {images.max().item():.3g}]; "
            "convert GAN outputs in [-1, 1] with (x + 1) / 2 first")
    if images.shape[1] == 1:  # like PIL .convert('RGB') on a greyscale PNG
        images = images.expand(-1, 3, -1, -1)
    return images


# ----------------------------------------------------------------------------- weights

def hub_weights_path() -> Path:
    """Where torch hub (and so pytorch-fid) keeps the FID weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def _missing(path: Path, source: str) -> GenlabError:
    offline_note = f"; ${OFFLINE_ENV} is set, so it was not downloaded" if source == HUB_SOURCE else ""
    return GenlabError(
        f"FID Inception weights not found: {path} ({source}){offline_note}. Download {weights_url()} and put it "
        f"at {hub_weights_path()} (or run `genlab data download inception` where there is internet, pass "
        f"--weights FILE, or set {WEIGHTS_ENV}=FILE); or use the fallback extractor (--fallback), whose FIDs "
        "are NOT comparable to published ones")


def choose_extractor(choice: str, weights: str | os.PathLike | None = None, setting: str = "extractor") -> str:
    """The one rule behind `extractor: auto` (GAN training and the prior comparison alike):
    "inception" when its weights are found (downloaded on first use), else "fallback" with a warning
    that the values are NOT comparable to published FIDs. "inception" and "fallback" are returned as
    they are (a missing weights file then fails when the network is built)."""
    return extractor_choice(choice, weights, setting)[0]


def extractor_choice(choice: str, weights: str | os.PathLike | None = None,
                     setting: str = "extractor") -> tuple[str, str]:
    """`choose_extractor`'s answer, and why the fallback was chosen ("" for the Inception network)."""
    if choice not in ("auto", "inception", "fallback"):
        raise GenlabError(f"{setting}={choice!r}: choose auto, inception or fallback")
    if choice != "auto":
        return choice, "" if choice == "inception" else f"{setting}=fallback"
    try:
        resolve_weights(weights)
        return "inception", ""
    except GenlabError as exc:
        warnings.warn(f"{exc}. Using the fallback extractor: these FIDs are NOT comparable to published "
                      f"ones (set {setting}=inception to make this an error)", stacklevel=3)
        return "fallback", str(exc)


def weights_url() -> str:
    """pytorch-fid's URL, or the mirror in $GENLAB_FID_WEIGHTS_URL."""
    return os.environ.get(URL_ENV) or FID_WEIGHTS_URL


def resolve_weights(weights: str | os.PathLike | None = None) -> Path:
    """An explicit path wins, then $GENLAB_FID_WEIGHTS, then the torch hub cache, where the file is
    downloaded (and verified) on first use unless $GENLAB_OFFLINE is set; else GenlabError."""
    if weights is not None:
        path, source = Path(weights).expanduser(), "the weights= / --weights value"
    elif os.environ.get(WEIGHTS_ENV):
        path, source = Path(os.environ[WEIGHTS_ENV]).expanduser(), f"${WEIGHTS_ENV}"
    else:
        path, source = hub_weights_path(), HUB_SOURCE
        if not path.is_file() and not offline():
            return download_inception_weights()
    if not path.is_file():
        raise _missing(path, source)
    return path


def download_inception_weights(progress: bool = True) -> Path:
    """The FID weights in the torch hub cache, downloaded from `weights_url()` and verified if
    missing ($GENLAB_FID_WEIGHTS_SHA256 replaces the check of the hash in the file name)."""
    if offline() and not hub_weights_path().is_file():
        raise _missing(hub_weights_path(), HUB_SOURCE)
    return download_weights(weights_url(), hub_weights_path(), check_weights_file,
                            sha256=os.environ.get(SHA256_ENV) or None, progress=progress)


@dataclass(frozen=True)
class FIDNetwork:
    """What a weights file must hold and how the FID network is built from it: pytorch-fid's
    Inception (`FID_NETWORK`). Tests put a tiny network in its place to run downloads and the
    whole FID path in milliseconds."""

    shapes: Callable[[], dict[str, tuple[int, ...]]]  # tensor name -> shape of a fitting state dict
    build: Callable[[dict, int, str], torch.nn.Module]  # (state dict, dims, origin for errors) -> network


def pytorch_fid_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of pytorch-fid's FID Inception state dict (on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in _inception_template().state_dict().items()}


def check_weights_file(path: Path) -> None:
    """GenlabError (its message: only the reason) unless `path` loads as a state dict that fits `FID_NETWORK`."""
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle: the error below says it
            warnings.simplefilter("ignore")
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated file, a page, a foreign pickle...
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise GenlabError(f"not a PyTorch state dict ({type(exc).__name__}: {first})") from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise GenlabError(f"not a state dict of tensors (a {type(state_dict).__name__})")
    expected = FID_NETWORK.shapes()
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if got != expected:
        missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
        wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        raise GenlabError(f"a state dict, but not the FID Inception weights ({len(missing)} missing, {len(extra)} "
                          f"unexpected, {len(wrong)} mis-shaped tensors, e.g. {(missing + extra + wrong)[0]})")


_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        _hash_memo[key] = file_digest(path)
    return _hash_memo[key]


_build_lock = threading.Lock()


@contextlib.contextmanager
def _state_dict_source(state_dict: dict) -> Iterator[None]:
    # pytorch-fid's only way to get weights is `load_state_dict_from_url`; swapping that one
    # function lets us reuse its exact network definition with a local file, and guarantees
    # that building the network never touches the network.
    with _build_lock:
        original = _pfid_inception.load_state_dict_from_url
        _pfid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
        try:
            yield
        finally:
            _pfid_inception.load_state_dict_from_url = original


def _build_network(state_dict: dict, dims: int, origin: str) -> InceptionV3:
    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise GenlabError(f"FID feature dims must be one of {list(DIMS)}, got {dims}")
    try:
        with _state_dict_source(state_dict):
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    except RuntimeError as exc:  # key or shape mismatch in load_state_dict
        first = str(exc).strip().splitlines()[0]
        raise GenlabError(
            f"{origin} does not fit pytorch-fid's FID Inception network ({first}); "
            f"use {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}") from None
    return net.eval()


FID_NETWORK = FIDNetwork(shapes=pytorch_fid_shapes, build=_build_network)


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------- extractor

@dataclass
class FeatureExtractor:
    """Maps [0,1] image batches to (N, dims) float32 features.

    `id` identifies everything that changes the features (network, weights hash, dims, and for
    the fallback its seed and calibration set); caches are keyed on it. `label` is what gets
    printed next to a value.
    """

    model: torch.nn.Module
    dims: int
    id: str
    label: str
    comparable: bool
    device: torch.device
    # Memory layout of the forward pass (see `fast_layout`); the model is converted to it by the
    # builders. Either layout gives the same features to float round-off, and a given extractor
    # gives bit-identical features whatever layout or batching its input comes in.
    channels_last: bool = False
    # Why the fallback network stands in for the Inception one (e.g. the failed download), for outputs to say.
    fallback_reason: str = ""

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        # inference_mode: no autograd bookkeeping at all (cheaper than no_grad); the images are
        # quantised like a saved PNG and resized to 299 by pytorch-fid's own forward, on the fly.
        with torch.inference_mode():
            x = quantize(_check_batch(images).to(self.device))
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            pred = self.model(x)[0]
            # 64/192/768-d blocks are spatial maps: pool them like pytorch-fid does.
            if pred.shape[2] != 1 or pred.shape[3] != 1:
                pred = F.adaptive_avg_pool2d(pred, output_size=(1, 1))
            return pred.reshape(pred.shape[0], -1).float().cpu().numpy()


def fast_layout(device: torch.device) -> bool:
    """Whether the Inception forward runs in channels_last on this device: measured faster on
    this project's CPU (oneDNN convolutions, benchmarks/fid_bench.py) and the usual choice on
    GPUs with tensor cores. `$GENLAB_FID_CHANNELS_LAST=0/1` overrides it."""
    env = os.environ.get(CHANNELS_LAST_ENV)
    if env is not None:
        return env.strip() not in ("", "0", "false", "no")
    return DEFAULT_CHANNELS_LAST


def _fuse_batchnorm(net: InceptionV3) -> InceptionV3:
    """Fold every eval-mode BatchNorm into the convolution before it (torch's own
    `fuse_conv_bn_eval`): one pass over each activation instead of two, the same function to
    float round-off. pytorch-fid's BasicConv2d is conv -> bn -> relu, so bn becomes Identity."""
    for module in net.modules():
        if isinstance(getattr(module, "conv", None), torch.nn.Conv2d) and isinstance(
                getattr(module, "bn", None), torch.nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = torch.nn.Identity()
    return net


def _finish(net: InceptionV3, dev: torch.device, channels_last: bool | None,
            fuse: bool = True) -> tuple[InceptionV3, bool]:
    layout = fast_layout(dev) if channels_last is None else channels_last
    net = net.to(dev).eval()
    if fuse:
        net = _fuse_batchnorm(net)
    if layout:
        net = net.to(memory_format=torch.channels_last)
    for param in net.parameters():
        param.requires_grad_(False)
    return net, layout


def inception_extractor(weights: str | os.PathLike | None = None, dims: int = FID["dims"],
                        device: str | torch.device | None = None,
                        channels_last: bool | None = None) -> FeatureExtractor:
    """The FID Inception network with weights from a local file (see `resolve_weights`).

    `channels_last=None` picks the faster memory layout for the device (`fast_layout`)."""
    path = resolve_weights(weights)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated download, HTML error page, wrong format...
        if wants_code(exc):
            raise refusal(path, "FID weights file", f"download it again from {FID_WEIGHTS_URL}") from None
        raise GenlabError(f"cannot read FID weights {path} ({first_line(exc)}); "
                          f"download it again from {FID_WEIGHTS_URL}") from None
    if not isinstance(state_dict, dict):
        raise GenlabError(f"FID weights {path} is not a state dict; download it again from {FID_WEIGHTS_URL}")
    dev = _default_device(device)
    net, layout = _finish(FID_NETWORK.build(state_dict, dims, f"FID weights {path}"), dev, channels_last)
    sha = _file_sha256(path)
    return FeatureExtractor(net, dims, id=f"pytorch-fid-inception-v3:sha256={sha[:16]}:dims={dims}{_layout_tag(layout)}",
                            label=f"pytorch-fid Inception-v3 ({path.name}, sha256 {sha[:8]})",
                            comparable=True, device=dev, channels_last=layout)


def _layout_tag(channels_last: bool) -> str:
    # Folded BatchNorm and the two layouts agree with pytorch-fid's forward to float round-off
    # only, so cached statistics never mix them.
    return ":bn-folded" + (":channels_last" if channels_last else "")


def _inception_template() -> torch.nn.Module:
    # pytorch-fid's FID blocks subclass torchvision's: same tensor names and shapes, no download.
    return torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)


def he_state_dict(seed: int) -> dict:
    """Seeded He-initialised weights with the FID network's keys.

    pytorch-fid's FID blocks subclass torchvision's, so torchvision's Inception3
    (1008 classes, no aux head) has exactly the same parameter names and shapes.
    """
    template = _inception_template()
    gen = torch.Generator().manual_seed(seed)
    for module in template.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=gen)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    return template.state_dict()


def take_images(images: Iterable[torch.Tensor], n: int) -> torch.Tensor:
    """The first `n` images of an iterable of images or batches, as one (n, C, H, W) tensor."""
    batches, have = [], 0
    for batch in _batches(images):
        batches.append(batch[: n - have])
        have += len(batches[-1])
        if have >= n:
            break
    if not batches:
        raise GenlabError("the fallback FID extractor needs real images to calibrate on; got none")
    return torch.cat(batches)


@torch.no_grad()
def fallback_extractor(calibration_images: torch.Tensor | Iterable[torch.Tensor] | str | os.PathLike,
                       seed: int = 0, dims: int = FID["dims"], device: str | torch.device | None = None,
                       batch_size: int = FID["batch_size"], max_images: int = MAX_CALIBRATION_IMAGES,
                       channels_last: bool | None = None) -> FeatureExtractor:
    """The FID network with seeded He weights and BatchNorm statistics set on real images.

    For machines without the Inception weights. Random conv filters still separate blur,
    noise and occlusion (see benchmarks/fid_bench.py), but the values are NOT comparable to
    published FIDs. `calibration_images` ([0,1] tensors, batches of them, or an image folder;
    the first `max_images` are used) become part of the id, by content hash, so caches built
    on different calibration sets never mix.
    """
    if isinstance(calibration_images, (str, os.PathLike)):
        calibration_images = iter_folder(calibration_images, batch_size)
    calib = quantize(_check_batch(take_images(calibration_images, max_images)))
    calib_hash = hashlib.sha256(calib.mul(255).round().to(torch.uint8).numpy().tobytes()).hexdigest()
    calib_hash += f"-{tuple(calib.shape)}"
    dev = _default_device(device)
    net, layout = _finish(_build_network(he_state_dict(seed), dims, "fallback weights"), dev, channels_last,
                          fuse=False)  # BatchNorm is calibrated first, folded after
    memory_format = torch.channels_last if layout else torch.contiguous_format
    # Cumulative averages (momentum=None) over every calibration batch, from fresh statistics.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    for start in range(0, len(calib), batch_size):
        net(calib[start:start + batch_size].to(dev).contiguous(memory_format=memory_format))
    net = _fuse_batchnorm(net.eval())
    short = hashlib.sha256(calib_hash.encode()).hexdigest()[:16]
    ident = (f"fallback-inception-v3:seed={seed}:calib={short}:n={len(calib)}:bs={batch_size}:dims={dims}"
             f"{_layout_tag(layout)}")
    return FeatureExtractor(net, dims, id=ident,
                            label=f"{FALLBACK_LABEL} (He init seed {seed}, BatchNorm calibrated on {len(calib)} "
                                  f"real images {short[:8]})",
                            comparable=False, device=dev, channels_last=layout)


# ----------------------------------------------------------------------------- image folders

def list_images(folder: str | os.PathLike) -> list[Path]:
    """The files pytorch-fid reads from a folder: same extensions, same (case-sensitive) glob, same order."""
    path = Path(folder)
    if not path.is_dir():
        raise GenlabError(f"image folder not found: {path}; pass a folder of images or a .npz statistics file")
    files = sorted(f for ext in IMAGE_EXTENSIONS for f in path.glob(f"*.{ext}"))
    if not files:
        raise GenlabError(f"no images in {path}: expected files ending in "
                          f"{', '.join('.' + e for e in sorted(IMAGE_EXTENSIONS))} (lower case, like pytorch-fid)")
    return files


def _load_image(path: Path) -> torch.Tensor:
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise GenlabError(f"cannot read image {path} ({exc}); delete or replace the file") from None
    # Same arithmetic as torchvision's ToTensor on a uint8 image.
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)


def iter_folder(folder: str | os.PathLike, batch_size: int = FID["batch_size"]) -> Iterator[torch.Tensor]:
    """Batches of [0,1] tensors from an image folder (one size per batch, as pytorch-fid requires)."""
    files = list_images(folder)
    for start in range(0, len(files), batch_size):
        chunk = [_load_image(f) for f in files[start:start + batch_size]]
        shapes = {tuple(t.shape) for t in chunk}
        if len(shapes) > 1:
            raise GenlabError(f"images in {folder} have different sizes {sorted(shapes)}; "
                              "resize them to one size first (pytorch-fid cannot batch them either)")
        yield torch.stack(chunk)


def load_folder(folder: str | os.PathLike) -> torch.Tensor:
    return torch.cat(list(iter_folder(folder)))


# ----------------------------------------------------------------------------- features

def _batches(images: torch.Tensor | Iterable) -> Iterator[torch.Tensor]:
    """Accept one tensor, or an iterable of tensors or of (tensor, label, ...) tuples (a DataLoader)."""
    if isinstance(images, torch.Tensor):
        yield images if images.dim() == 4 else images.unsqueeze(0)
        return
    for item in images:
        if isinstance(item, (tuple, list)):
            item = item[0]
        yield item if item.dim() == 4 else item.unsqueeze(0)


def _rebatch(images: torch.Tensor | Iterable, batch_size: int, limit: int | None) -> Iterator[torch.Tensor]:
    # Fixed-size batches whatever the caller's batching, so results do not depend on it.
    buffer: list[torch.Tensor] = []
    held = taken = 0
    for batch in _batches(images):
        if limit is not None:
            batch = batch[: limit - taken]
        taken += len(batch)
        buffer.append(batch)
        held += len(batch)
        while held >= batch_size:
            full = torch.cat(buffer)
            yield full[:batch_size]
            rest = full[batch_size:]
            buffer, held = ([rest] if len(rest) else []), len(rest)
        if limit is not None and taken >= limit:
            break
    if held:
        yield torch.cat(buffer)


def features_from_tensors(extractor: FeatureExtractor, images: torch.Tensor | Iterable,
                          batch_size: int = FID["batch_size"], limit: int | None = None, *,
                          description: str = "FID features", total: int | None = None,
                          should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """(N, dims) float32 features of [0,1] images: a tensor, or an iterable of batches.

    `limit` stops after that many images (e.g. the first 1000 of a DataLoader). A progress bar
    (`description`, out of `total` or `limit` images) shows on a terminal. Ctrl-C, and SIGTERM
    under the genlab CLI (which turns it into Ctrl-C), stop it within one batch; a caller with
    its own stop flag (Lightning's SIGTERM) passes `should_stop`, checked before every batch,
    which raises `Interrupted` when it returns True.
    """
    if total is None:
        total = limit if limit is not None else (len(images) if isinstance(images, torch.Tensor) else None)
    out = []
    with progress(description, total) as advance:
        for batch in _rebatch(images, batch_size, limit):
            if should_stop is not None and should_stop():
                raise Interrupted(f"stopped during {description} after {sum(len(o) for o in out)} images")
            out.append(extractor(batch))
            advance(len(batch))
    if not out:
        raise GenlabError("no images to compute FID features from")
    return np.concatenate(out)


def features_from_folder(extractor: FeatureExtractor, folder: str | os.PathLike,
                         batch_size: int = FID["batch_size"]) -> np.ndarray:
    """Features of every image in a folder, read like `python -m pytorch_fid` reads it."""
    total = len(list_images(folder))
    return features_from_tensors(extractor, iter_folder(folder, batch_size), batch_size,
                                 description=f"FID features of {Path(folder).name or folder}", total=total)


def folder_digest(folder: str | os.PathLike) -> tuple[str, int]:
    """(sha256 of the names and bytes of the images pytorch-fid would read, their count): what a
    folder's cached statistics are keyed on, so any added, removed or rewritten image misses."""
    files = list_images(folder)
    h = hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        h.update(f"{f.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest(), len(files)
