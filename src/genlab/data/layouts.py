"""The official on-disk layouts of the image datasets: find the files and their labels.

Each `index_<name>(root)` returns an `ImageIndex` (file list, per-image targets, the official
partition when the dataset ships one, and a description of the labels) or raises a GenlabError
that names the expected path and the command that explains how to get the data. No pixels are
decoded here.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from genlab.data.transforms import IMAGE_EXTENSIONS, is_image_file
from genlab.errors import GenlabError

DEFAULT_ROOT = Path("data")  # `data.root` unset -> ./data/<name>


@dataclass
class ImageIndex:
    name: str
    root: Path  # the dataset's own folder (e.g. .../tiny-imagenet-200)
    files: list[str]  # absolute-or-as-given paths as strings (pathlib is too slow for 200k files)
    targets: np.ndarray  # (N,) int64 labels (-1 = none) or (N, K) attributes in {0, 1} (-1 = unknown)
    partition: Optional[list[str]] = None  # official split of each file ("train"/"val"/"test"), if shipped
    labels: dict[str, Any] = field(default_factory=dict)  # attr_names / classes / class_names / columns


def default_root(name: str) -> Path:
    return DEFAULT_ROOT / name


def _missing(name: str, expected: Path, root: Path, what: str) -> GenlabError:
    return GenlabError(f"{name}: {what} not found at {expected}; run `genlab data download {name} --root {root}` "
                       f"(it fetches the data, or says where to get it and where to put it)")


def relative(path: str, root: Path) -> str:
    """`path` relative to `root`, with / separators (cheap string work, no pathlib)."""
    prefix = os.path.join(str(root), "")
    rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
    return rel.replace(os.sep, "/")


def _scan_images(folder: Path, recursive: bool) -> tuple[list[str], list[str]]:
    """Image files (sorted path strings) and the other files seen, skipping hidden entries."""
    images, others = [], []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except NotADirectoryError:
            raise GenlabError(f"{current}: expected a folder of images, found a file") from None
        except OSError as exc:
            raise GenlabError(f"{current}: cannot list the folder ({exc.strerror})") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if recursive:
                    stack.append(Path(entry.path))
            elif is_image_file(entry.name):
                images.append(entry.path)
            else:
                others.append(entry.path)
    return sorted(images), others


def _require_images(images: list[str], others: list[str], folder: Path, name: str) -> None:
    if images:
        return
    seen = f" (found {len(others)} other file(s), e.g. {others[0]})" if others else " (the folder is empty)"
    raise GenlabError(f"{name}: no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...) in {folder}{seen}")


# --- CelebA -------------------------------------------------------------------------------------
CELEBA_PARTS = {"0": "train", "1": "val", "2": "test"}


def _celeba_folder(root: Path) -> Path:
    """Accepts the official layout (ROOT/img_align_celeba), torchvision's (ROOT/celeba/...),
    ROOT being img_align_celeba itself, and Kaggle's doubled img_align_celeba/img_align_celeba."""
    if root.name == "img_align_celeba" and root.is_dir():
        root = root.parent
    for candidate in (root, root / "celeba"):
        if (candidate / "img_align_celeba").is_dir():
            return candidate
    for candidate in (root, root / "celeba"):
        if (candidate / "img_align_celeba.zip").is_file():
            raise GenlabError(f"celeba: found {candidate / 'img_align_celeba.zip'} but not the folder; extract it "
                              f"there (`unzip img_align_celeba.zip -d {candidate}`)")
    raise _missing("celeba", root / "img_align_celeba", root, "image folder")


def _read_celeba_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Official `list_attr_celeba.txt` (count line, header, rows of -1/1) or Kaggle's CSV."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise GenlabError(f"{path}: cannot read the attribute file ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if path.suffix == ".csv":
        header, rows = lines[0].split(",")[1:], [line.split(",") for line in lines[1:]]
        first_row = 2
    else:
        if len(lines) < 2:
            raise GenlabError(f"{path}: expected a count line, a header line and rows of -1/1")
        header, rows, first_row = lines[1].split(), [line.split() for line in lines[2:]], 3
    for i, row in enumerate(rows):
        if len(row) != len(header) + 1:
            raise GenlabError(f"{path}, line {i + first_row}: {len(row) - 1} values for {len(header)} attributes")
    try:  # numpy parses the 8M numbers of the full file in C
        values = (np.array([row[1:] for row in rows], dtype=np.str_).reshape(len(rows), len(header))
                  .astype(np.int64) > 0).astype(np.int64)
    except ValueError:
        raise GenlabError(f"{path}: attribute values must be -1 or 1") from None
    return header, dict(zip((row[0] for row in rows), values))


def _read_partition(path: Path) -> dict[str, str]:
    out = {}
    for i, line in enumerate(path.read_text().splitlines()):
        parts = line.replace(",", " ").split()
        if not parts or (i == 0 and parts[0] == "image_id"):
            continue
        if len(parts) != 2 or parts[1] not in CELEBA_PARTS:
            raise GenlabError(f"{path}, line {i + 1}: expected '<file> <0|1|2>', got {line!r}")
        out[parts[0]] = CELEBA_PARTS[parts[1]]
    return out


def index_celeba(root: str | os.PathLike | None = None) -> ImageIndex:
    root = Path(root) if root is not None else default_root("celeba")
    base = _celeba_folder(root)
    folder = base / "img_align_celeba"
    if (folder / "img_align_celeba").is_dir() and not any(is_image_file(p) for p in os.listdir(folder)):
        folder = folder / "img_align_celeba"
    files, others = _scan_images(folder, recursive=False)
    _require_images(files, others, folder, "celeba")

    names = [os.path.basename(p) for p in files]
    labels: dict[str, Any] = {"attr_names": []}
    targets = np.full((len(files),), -1, dtype=np.int64)
    attr_file = next((base / n for n in ("list_attr_celeba.txt", "list_attr_celeba.csv") if (base / n).is_file()), None)
    if attr_file is not None:
        header, table = _read_celeba_attributes(attr_file)
        unknown = np.full(len(header), -1, dtype=np.int64)
        targets = np.stack([table.get(n, unknown) for n in names])
        labels = {"attr_names": header, "attr_file": str(attr_file),
                  "without_attributes": sum(n not in table for n in names)}
    partition = None
    part_file = next((base / n for n in ("list_eval_partition.txt", "list_eval_partition.csv")
                      if (base / n).is_file()), None)
    if part_file is not None:
        parts = _read_partition(part_file)
        partition = [parts.get(n, "train") for n in names]
        labels["partition_file"] = str(part_file)
    return ImageIndex("celeba", base, files, targets, partition, labels)


# --- Tiny-ImageNet ------------------------------------------------------------------------------
def _tiny_folder(root: Path) -> Path:
    for candidate in (root, root / "tiny-imagenet-200", root.parent if root.name == "train" else root):
        if (candidate / "wnids.txt").is_file() and (candidate / "train").is_dir():
            return candidate
    if (root / "tiny-imagenet-200.zip").is_file():
        raise GenlabError(f"tinyimagenet: found {root / 'tiny-imagenet-200.zip'} but not the folder; run "
                          f"`genlab data download tinyimagenet --root {root}` to extract it")
    expected = root / "tiny-imagenet-200"
    if (root / "train").is_dir() or (root / "wnids.txt").is_file():
        expected = root
    what = "wnids.txt and train/" if expected.is_dir() else "dataset folder"
    raise _missing("tinyimagenet", expected, root, what)


def index_tinyimagenet(root: str | os.PathLike | None = None) -> ImageIndex:
    root = Path(root) if root is not None else default_root("tinyimagenet")
    base = _tiny_folder(root)
    wnids = sorted(line.strip() for line in (base / "wnids.txt").read_text().splitlines() if line.strip())
    if not wnids:
        raise GenlabError(f"{base / 'wnids.txt'}: empty; it should list the 200 class ids (n01443537, ...)")
    class_of = {w: i for i, w in enumerate(wnids)}
    words = {}
    if (base / "words.txt").is_file():
        for line in (base / "words.txt").read_text().splitlines():
            wnid, _, name = line.partition("\t")
            if wnid in class_of:
                words[wnid] = name.strip()

    files, targets, partition = [], [], []
    for wnid in wnids:
        folder = base / "train" / wnid / "images"
        if not folder.is_dir():
            continue
        images, _ = _scan_images(folder, recursive=False)
        files += images
        targets += [class_of[wnid]] * len(images)
        partition += ["train"] * len(images)
    if not files:
        raise GenlabError(f"tinyimagenet: no images under {base / 'train'} (expected train/<wnid>/images/*.JPEG "
                          f"for the ids in wnids.txt)")
    strays = sorted(d.name for d in (base / "train").iterdir() if d.is_dir() and d.name not in class_of)
    if strays:
        raise GenlabError(f"tinyimagenet: {base / 'train' / strays[0]} is not a class listed in {base / 'wnids.txt'} "
                          f"(wrong layout or wrong wnids.txt)")

    val_images = base / "val" / "images"
    if val_images.is_dir():
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise GenlabError(f"tinyimagenet: {annotations} not found; the labels of val/images come from it")
        for i, line in enumerate(annotations.read_text().splitlines()):
            parts = line.split("\t")
            if not line.strip():
                continue
            if len(parts) < 2 or parts[1] not in class_of:
                raise GenlabError(f"{annotations}, line {i + 1}: expected '<file>\\t<wnid>\\t...' with a wnid "
                                  f"from wnids.txt, got {line!r}")
            path = val_images / parts[0]
            if path.is_file():
                files.append(str(path))
                targets.append(class_of[parts[1]])
                partition.append("val")
    labels = {"classes": wnids, "class_names": [words.get(w, w) for w in wnids]}
    has_val = "val" in partition
    return ImageIndex("tinyimagenet", base, files, np.asarray(targets, dtype=np.int64),
                      partition if has_val else None, labels)


# --- Bitmoji ------------------------------------------------------------------------------------
def index_bitmoji(root: str | os.PathLike | None = None) -> ImageIndex:
    """A folder of JPEGs (searched recursively: Kaggle ships them in `trainimages/` or `images/`)
    with an optional `train.csv` (image_id, is_male in {1, 0 or -1}, landmarks...)."""
    root = Path(root) if root is not None else default_root("bitmoji")
    if not root.is_dir():
        raise _missing("bitmoji", root, root, "image folder")
    files, others = _scan_images(root, recursive=True)
    _require_images(files, others, root, "bitmoji")
    names = [os.path.basename(p) for p in files]
    csv_path = next((p for p in (root / "train.csv", root.parent / "train.csv") if p.is_file()), None)
    targets = np.full((len(files),), -1, dtype=np.int64)
    labels: dict[str, Any] = {}
    if csv_path is not None:
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if "image_id" not in columns:
                raise GenlabError(f"{csv_path}: expected an 'image_id' column (got {', '.join(columns) or 'none'})")
            rows = {row["image_id"]: row for row in reader}
        if "is_male" in columns:
            try:
                targets = np.array([(1 if float(rows[n]["is_male"]) > 0 else 0) if n in rows else -1
                                    for n in names], dtype=np.int64)
            except ValueError:
                raise GenlabError(f"{csv_path}: is_male must be numeric (1 = male, 0 or -1 = female)") from None
            labels["target"] = "is_male (1 male, 0 female, -1 not in train.csv)"
        labels.update(csv_file=str(csv_path), columns=[c for c in columns if c != "image_id"],
                      in_csv=sum(n in rows for n in names))
    return ImageIndex("bitmoji", root, files, targets, None, labels)


# --- any folder ---------------------------------------------------------------------------------
def index_folder(root: str | os.PathLike | None = None) -> ImageIndex:
    """Every image under `root`, recursively. Images inside top-level subfolders get the
    subfolder's index as their label (like torchvision's ImageFolder); loose ones get -1."""
    if root is None:
        raise GenlabError("data.name=folder needs data.root=PATH (a folder of images, searched recursively)")
    root = Path(root)
    if not root.is_dir():
        raise GenlabError(f"folder: {root} is not a folder; set data.root to a folder of images")
    files, others = _scan_images(root, recursive=True)
    _require_images(files, others, root, "folder")
    tops = [relative(p, root).split("/") for p in files]
    classes = sorted({parts[0] for parts in tops if len(parts) > 1})
    class_of = {c: i for i, c in enumerate(classes)}
    targets = np.array([class_of[parts[0]] if len(parts) > 1 else -1 for parts in tops], dtype=np.int64)
    return ImageIndex("folder", root, files, targets, None, {"classes": classes} if classes else {})


INDEXERS = {"celeba": index_celeba, "tinyimagenet": index_tinyimagenet, "bitmoji": index_bitmoji,
            "folder": index_folder}


def index_dataset(name: str, root: str | os.PathLike | None = None) -> ImageIndex:
    if name not in INDEXERS:
        raise GenlabError(f"unknown image dataset {name!r} (known: {', '.join(INDEXERS)})")
    return INDEXERS[name](root)
