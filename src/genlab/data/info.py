"""`genlab data info NAME` and `genlab data download NAME`: what a dataset folder holds, and
how to get one.

`dataset_info` prints the image count, the train/val split, a resolution (and colour mode)
histogram, the labels present, and writes a preview grid PNG; it returns the same facts as a
dict. `download` fetches what has a public URL (dSprites, Tiny-ImageNet) and, for CelebA and
Bitmoji, prints where to obtain the files and where to put them.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from genlab.errors import GenlabError

INFO_SAMPLE = 20_000  # headers read for the histogram; beyond this a deterministic sample
PREVIEW_N = 64
CELEBA_CROP = 148 / 178  # the usual CelebA face crop, used for the preview

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"  # 248,100,043 bytes


# --- info ---------------------------------------------------------------------------------------
def dataset_info(name: str, root: str | os.PathLike | None = None, console: Optional[Console] = None,
                 preview: str | os.PathLike | None = None) -> dict[str, Any]:
    console = console or Console(highlight=False)
    if name == "dsprites":
        return _dsprites_info(root, console, preview)
    from genlab.data.images import split_positions
    from genlab.data.layouts import index_dataset

    index = index_dataset(name, root)
    n = len(index.files)
    rng = np.random.default_rng(0)
    probe = index.files if n <= INFO_SAMPLE else [index.files[i] for i in np.sort(rng.choice(n, INFO_SAMPLE, replace=False))]
    sizes, modes, unreadable = Counter(), Counter(), []
    for path in probe:
        try:
            with Image.open(path) as img:  # reads the header only
                sizes[img.size] += 1
                modes[img.mode] += 1
        except Exception:  # noqa: BLE001 - any failure here just means "unreadable", reported below
            unreadable.append(path)
    splits = {s: len(split_positions(index, s)) for s in ("train", "val")}
    info: dict[str, Any] = {
        "name": name, "root": str(index.root), "count": n, "splits": splits,
        "split_rule": "official partition" if index.partition is not None else "hash of the file path (val_fraction 0.1)",
        "resolutions": {f"{w}x{h}": c for (w, h), c in sizes.most_common()},
        "modes": dict(modes.most_common()), "probed": len(probe),
        "unreadable_headers": [str(p) for p in unreadable], "labels": _label_summary(index),
    }
    out = Path(preview) if preview is not None else _default_preview(name)
    info["preview"] = str(_write_preview(index, out, name, rng))
    _print_info(info, console)
    return info


def _label_summary(index) -> dict[str, Any]:
    t, labels = index.targets, index.labels
    if index.name == "celeba":
        names = labels.get("attr_names", [])
        if not names:
            return {"attributes": "none (no list_attr_celeba.txt)"}
        known = (t >= 0).all(axis=1)
        share = t[known].mean(axis=0) if known.any() else np.zeros(len(names))
        return {"attributes": len(names), "file": labels.get("attr_file"),
                "images_without_attributes": labels.get("without_attributes", 0),
                "positive_share": {a: round(float(s), 3) for a, s in zip(names, share)}}
    if index.name == "tinyimagenet":
        counts = np.bincount(t, minlength=len(labels["classes"]))
        return {"classes": len(labels["classes"]), "per_class_min": int(counts.min()),
                "per_class_max": int(counts.max()), "examples": labels["class_names"][:3]}
    if index.name == "bitmoji":
        if "csv_file" not in labels:
            return {"train.csv": "absent (no labels)"}
        return {"file": labels["csv_file"], "columns": labels["columns"], "images_in_csv": labels["in_csv"],
                "is_male": {"male": int((t == 1).sum()), "female": int((t == 0).sum()),
                            "unknown": int((t < 0).sum())}}
    classes = labels.get("classes", [])
    return {"classes": len(classes), "examples": classes[:5]} if classes else {"classes": "none (no subfolders)"}


def _default_preview(name: str) -> Path:
    from genlab.io import cache_dir

    return cache_dir("previews") / f"{name}.png"


def _write_preview(index, out: Path, name: str, rng: np.random.Generator) -> Path:
    import torch

    from genlab.data.transforms import ImageTransform, to_float
    from genlab.io import save_grid

    transform = ImageTransform(size=64, crop=CELEBA_CROP if name == "celeba" else 1.0)
    order = rng.permutation(len(index.files))
    images = []
    for i in order:
        try:
            images.append(to_float(transform.load(index.files[i])))
        except GenlabError:
            continue  # already counted as unreadable or will fail in training with a clear error
        if len(images) == PREVIEW_N:
            break
    if not images:
        raise GenlabError(f"{index.root}: none of the images could be decoded for the preview")
    return save_grid(torch.stack(images), out, nrow=8)


def _print_info(info: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{info['name']} at {info['root']}", show_header=False)
    table.add_row("images", f"{info['count']:,}")
    table.add_row("split", f"train {info['splits']['train']:,} / val {info['splits']['val']:,} "
                  f"({info['split_rule']})")
    probed = "" if info["probed"] == info["count"] else f" (sample of {info['probed']:,})"
    top = list(info["resolutions"].items())
    res = ", ".join(f"{k}: {v:,}" for k, v in top[:8]) + (f", ... {len(top) - 8} more" if len(top) > 8 else "")
    table.add_row("resolutions" + probed, res)
    table.add_row("colour modes", ", ".join(f"{k}: {v:,}" for k, v in info["modes"].items()) +
                  ("  (converted to RGB)" if set(info["modes"]) - {"RGB"} else ""))
    if info["unreadable_headers"]:
        table.add_row("[red]unreadable[/]", f"{len(info['unreadable_headers'])}, e.g. {info['unreadable_headers'][0]}"
                      " (data.skip_corrupt=true skips them)")
    for key, value in info["labels"].items():
        if key == "positive_share":
            value = ", ".join(f"{a} {s:.2f}" for a, s in value.items())
        table.add_row(f"labels: {key}", str(value))
    table.add_row("preview", info["preview"])
    console.print(table)


def _dsprites_info(root, console: Console, preview) -> dict[str, Any]:
    from genlab.data import dsprites

    source = "npz" if root is not None else "render"
    info = dsprites.info(source=source, root=root)
    table = Table(title="dsprites", show_header=False)
    for key, value in info.items():
        if key == "factors":
            value = ", ".join(f"{k} ({v['size']}: {v['min']:g}..{v['max']:g})" for k, v in value.items())
        table.add_row(key, str(value))
    rng = np.random.default_rng(0)
    classes = dsprites.index_to_classes(rng.choice(dsprites.N_IMAGES, PREVIEW_N, replace=False))
    import torch

    from genlab.io import save_grid

    imgs = torch.from_numpy(dsprites.render(classes)).float().unsqueeze(1)
    out = save_grid(imgs, Path(preview) if preview is not None else _default_preview("dsprites"), nrow=8)
    info["preview"] = str(out)
    table.add_row("preview", str(out))
    console.print(table)
    return info


# --- download -----------------------------------------------------------------------------------
def _celeba_steps(root: Path) -> str:
    return f"""[bold]CelebA cannot be downloaded automatically[/]: you must accept its terms
(non-commercial research), and its Google Drive links refuse scripted downloads
once over quota.
 1. Open https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
    -> "Align&Cropped Images" (Google Drive or Baidu).
 2. Download Img/img_align_celeba.zip (1.4 GB: 202,599 JPEGs of 178x218),
    Anno/list_attr_celeba.txt and Eval/list_eval_partition.txt.
 3. Put them here (unzip img_align_celeba.zip -d {root}):
      {root}/img_align_celeba/000001.jpg ... 202599.jpg
      {root}/list_attr_celeba.txt       (the 40 attributes; optional)
      {root}/list_eval_partition.txt    (official train/val/test split; optional)
    torchvision's layout ({root}/celeba/...) and Kaggle's
    "jessicali9530/celeba-dataset" (img_align_celeba/img_align_celeba/, CSV
    label files) are accepted too.
 4. Check it:    genlab data info celeba --root {root}
    Train on it: genlab train vae-celeba data.root={root}"""


def _bitmoji_steps(root: Path) -> str:
    return f"""[bold]Bitmoji faces cannot be downloaded automatically[/]: they are on Kaggle,
which needs an account.
 1. Open https://www.kaggle.com/competitions/bitmoji-faces-gender-recognition
    -> Data -> Download All (or, with the Kaggle CLI:
    kaggle competitions download -c bitmoji-faces-gender-recognition).
 2. Unzip it so that the JPEGs (0000.jpg, 0001.jpg, ..., 384x384) lie anywhere
    under {root} (e.g. {root}/trainimages/ or {root}/images/: the
    folder is searched recursively), with
      {root}/train.csv    (image_id,is_male,...; optional: the is_male labels)
    Any folder of Bitmoji JPEGs works the same way.
 3. Check it: genlab data info bitmoji --root {root}"""


def download(name: str, root: str | os.PathLike | None = None, console: Optional[Console] = None) -> Path:
    """Fetch `name` into `root` (default ./data/<name>) and return the dataset folder."""
    from genlab.data.layouts import default_root

    console = console or Console(highlight=False)
    if name == "dsprites":
        from genlab.data.dsprites import download_dsprites

        return download_dsprites(root)
    base = Path(root) if root is not None else default_root(name)
    if name == "tinyimagenet":
        return _download_tinyimagenet(base, console)
    if name in ("celeba", "bitmoji"):
        console.print(_celeba_steps(base) if name == "celeba" else _bitmoji_steps(base), soft_wrap=True)
        raise GenlabError(f"{name}: nothing was downloaded; follow the steps above, then run "
                          f"`genlab data info {name} --root {base}`")
    if name == "folder":
        raise GenlabError("folder: nothing to download; set data.root (or --root) to your own folder of images")
    raise GenlabError(f"unknown dataset {name!r} (known: dsprites, celeba, tinyimagenet, bitmoji, folder)")


def _download_tinyimagenet(base: Path, console: Console, url: str = TINY_URL, md5: Optional[str] = TINY_MD5,
                           progress: bool = True) -> Path:
    from genlab.data.download import extract, fetch

    folder = base / "tiny-imagenet-200"
    if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
        console.print(f"already there: {folder}")
        return folder
    archive = fetch(url, base / "tiny-imagenet-200.zip", md5=md5, progress=progress)
    console.print(f"extracting {archive} ...")
    extract(archive, base)
    if not (folder / "wnids.txt").is_file():
        raise GenlabError(f"{archive}: extracted, but {folder / 'wnids.txt'} is missing; the archive is not "
                          f"Tiny-ImageNet")
    archive.unlink()  # 248 MB that the extracted folder makes redundant
    return folder
