"""The study's image transforms: open, convert to RGB (or grey), centre-crop a square, resize.

One `ImageTransform` serves every image dataset. The crop is a *fraction of the shorter side*,
so the same setting crops the 178x218 CelebA originals and their 89x109 copies alike
(`crop=148/178` is the usual tight CelebA face crop; `crop=1.0` keeps the whole shorter side).
The output is a uint8 CxHxW tensor: that is what the cache stores; `to_float` gives the
library's [0, 1] floats.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from genlab.errors import GenlabError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TRANSFORM_VERSION = 1  # bump when the pixels a given transform produces change (invalidates caches)


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparent pixels are composited over white (a plain `convert`
    would expose whatever colour the transparent pixels happen to store); 16-bit grey keeps
    its top 8 bits instead of being clipped."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode != "F" or arr.max() > 1 else 1.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass(frozen=True)
class ImageTransform:
    """PIL image or file -> uint8 tensor of shape (channels, size, size)."""

    size: int = 64
    crop: float = 1.0  # side of the centre square, as a fraction of the shorter side
    channels: int = 3  # 3 = RGB, 1 = luminance
    fast_decode: bool = True  # let libjpeg decode at 1/2..1/8 scale when that still leaves >= 2x the target

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise GenlabError(f"image size must be positive, got {self.size}")
        if not 0 < self.crop <= 1:
            raise GenlabError(f"crop must be a fraction of the shorter side in (0, 1], got {self.crop}")
        if self.channels not in (1, 3):
            raise GenlabError(f"image datasets give 1 or 3 channels, got channels={self.channels}")

    def describe(self) -> dict:
        """Everything that determines the output pixels (part of the cache key)."""
        return {**asdict(self), "version": TRANSFORM_VERSION}

    def crop_side(self, width: int, height: int) -> int:
        return max(1, int(round(self.crop * min(width, height))))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = to_rgb(img)
        if self.channels == 1:
            img = img.convert("L")
        side = self.crop_side(*img.size)
        img = F.center_crop(img, [side, side])
        if side != self.size:
            img = F.resize(img, [self.size, self.size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        return F.pil_to_tensor(img)

    def _draft(self, img: Image.Image) -> None:
        """Ask libjpeg for a reduced-scale decode (DCT scaling) that keeps the centre crop at
        least twice the output size, so the antialiased resize still has enough pixels."""
        if img.format != "JPEG":
            return
        w, h = img.size
        spare = self.crop_side(w, h) / (2 * self.size)
        if spare >= 2:
            scale = 2 ** min(3, int(math.log2(spare)))
            img.draft(img.mode, (math.ceil(w / scale), math.ceil(h / scale)))

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """Decode and transform one file; any failure is a GenlabError naming the file."""
        return self(open_image(path, self._draft if self.fast_decode else None))


def open_image(path: str | os.PathLike, before_load=None) -> Image.Image:
    """Open and fully decode an image, turning every way a file can be unreadable into one
    GenlabError that names it and says what to do."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if before_load is not None:
                before_load(img)
            img.load()
            return img  # fully decoded: usable after the file is closed
    except FileNotFoundError:
        raise GenlabError(f"{path}: image file not found (was the dataset moved?)") from None
    except UnidentifiedImageError:
        raise GenlabError(f"{path}: not an image file; delete or replace it, or set data.skip_corrupt=true "
                          f"to skip unreadable images") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise GenlabError(f"{path}: corrupt or truncated image ({exc}); delete or replace it, or set "
                          f"data.skip_corrupt=true to skip unreadable images") from None


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (the library's image convention), bit-identical to
    `img.float() / 255`. Done in numpy on one thread: for one image (or one batch in a loader)
    torch's intra-op thread pool costs more than the work, up to 40x CPU on a busy machine."""
    out = img.numpy().astype(np.float32)
    out /= np.float32(255.0)
    return torch.from_numpy(out)


def reference_transform(size: int, crop_pixels: int, channels: int = 3):
    """The same pipeline written as a plain torchvision Compose for images of one known size
    (the benchmark's `ImageFolder` baseline and the tests' independent check)."""
    from torchvision import transforms as T

    steps = [T.Lambda(to_rgb)]
    if channels == 1:
        steps.append(T.Grayscale(1))
    steps += [T.CenterCrop(crop_pixels), T.Resize(size, interpolation=InterpolationMode.BILINEAR, antialias=True),
              T.ToTensor()]
    return T.Compose(steps)
