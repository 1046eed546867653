"""Small image datasets in the official on-disk layouts (CelebA, Tiny-ImageNet, Bitmoji), made from
smooth random colours, so the whole study pipeline runs in tests without ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize((w, h), Image.BILINEAR)


def make_datasets(root: Path, n: int = 40) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    celeba = root / "celeba"
    (celeba / "img_align_celeba").mkdir(parents=True)
    for i in range(1, n + 1):
        _image(rng, 36, 44).save(celeba / "img_align_celeba" / f"{i:06d}.jpg", quality=95)
    tiny = root / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    for wnid in wnids:
        folder = tiny / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(n // 2):
            _image(rng, 64, 64).save(folder / f"{wnid}_{i}.JPEG")
        (tiny / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    (tiny / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (tiny / "words.txt").write_text("n01\tgoldfish\nn02\tsalamander\n")
    bitmoji = root / "bitmoji"
    (bitmoji / "images").mkdir(parents=True)
    for i in range(n):
        _image(rng, 48, 48).save(bitmoji / "images" / f"{i:04d}.jpg")
    return {"celeba": celeba, "tinyimagenet": tiny, "bitmoji": bitmoji}
