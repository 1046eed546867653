"""Image datasets: the official layouts, labels, splits, transforms, bad input and `data info`.

Fixture folders in each layout are made in a temporary directory (no ../shared needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from genlab.config import load_config
from genlab.data.images import image_dataset, split_positions
from genlab.data.layouts import index_bitmoji, index_celeba, index_folder, index_tinyimagenet
from genlab.data.transforms import ImageTransform, reference_transform, to_rgb
from genlab.errors import GenlabError


def noise_image(rng: np.random.Generator, w: int, h: int, mode: str = "RGB") -> Image.Image:
    """Smooth random colours (upsampled noise): JPEG-friendly and different per image."""
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize((w, h), Image.BILINEAR)
    return img.convert(mode) if mode != "RGB" else img


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own genlab cache folder (never the user's)."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("genlab-cache")))


ATTRS = ["Bald", "Male", "Smiling"]


@pytest.fixture
def celeba_root(tmp_path: Path) -> Path:
    """12 JPEGs of 36x44 (the 178x218 aspect), the attribute file, the official partition."""
    root = tmp_path / "celeba"
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, 13):
        name = f"{i:06d}.jpg"
        noise_image(rng, 36, 44).save(folder / name, quality=95)
        rows.append(f"{name} " + " ".join(("1" if (i >> k) & 1 else "-1").rjust(2) for k in range(3)))
    (root / "list_attr_celeba.txt").write_text(f"12\n{' '.join(ATTRS)}\n" + "\n".join(rows) + "\n")
    # official partition: 1-8 train, 9-10 val, 11-12 test
    part = [f"{i:06d}.jpg {0 if i <= 8 else 1 if i <= 10 else 2}" for i in range(1, 13)]
    (root / "list_eval_partition.txt").write_text("\n".join(part) + "\n")
    return root


WNIDS = ["n02", "n01", "n03"]  # wnids.txt is not sorted in the official file either


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "tiny-imagenet-200"
    rng = np.random.default_rng(1)
    (root / "val" / "images").mkdir(parents=True)
    ann = []
    for c, wnid in enumerate(WNIDS):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(4):
            mode = "L" if (c, i) == (0, 0) else "RGB"  # Tiny-ImageNet has some greyscale JPEGs
            noise_image(rng, 16, 16, mode).save(folder / f"{wnid}_{i}.JPEG")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(2):
            name = f"val_{c * 2 + i}.JPEG"
            noise_image(rng, 16, 16).save(root / "val" / "images" / name)
            ann.append(f"{name}\t{wnid}\t0\t0\t15\t15")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n00\tentity\nn01\tgoldfish\nn02\tsalamander\nn03\tbullfrog\n")
    return root


@pytest.fixture
def bitmoji_root(tmp_path: Path) -> Path:
    root = tmp_path / "bitmoji"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(2)
    lines = ["image_id,is_male,nose_x,nose_y"]
    for i in range(10):
        noise_image(rng, 48, 48).save(root / "images" / f"{i:04d}.jpg")
        if i < 8:  # two images are not in train.csv; Kaggle's file uses 1 / -1
            lines.append(f"{i:04d}.jpg,{1 if i % 2 else -1},{20 + i},{30 + i}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root


# --- layouts and labels -------------------------------------------------------------------------


def test_celeba_official_layout_attributes_and_partition(celeba_root):
    train = image_dataset("celeba", celeba_root, "train", image_size=16)
    val = image_dataset("celeba", celeba_root, "val", image_size=16)
    assert [Path(f).name for f in train.files] == [f"{i:06d}.jpg" for i in range(1, 9)]
    assert [Path(f).name for f in val.files] == ["000009.jpg", "000010.jpg"]
    assert train.labels["attr_names"] == ATTRS
    x, attrs = val[1]  # image 10 = 0b1010: Bald -1 -> 0, Male 1, Smiling -1 -> 0
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert attrs.tolist() == [0, 1, 0]


def test_celeba_torchvision_and_kaggle_layouts(celeba_root, tmp_path):
    assert len(index_celeba(celeba_root.parent).files) == 12  # ROOT/celeba/... (torchvision)
    assert len(index_celeba(celeba_root / "img_align_celeba").files) == 12
    kaggle = tmp_path / "kaggle"
    (kaggle / "img_align_celeba").mkdir(parents=True)
    (celeba_root / "img_align_celeba").rename(kaggle / "img_align_celeba" / "img_align_celeba")
    (kaggle / "list_attr_celeba.csv").write_text("image_id,Bald,Male,Smiling\n000003.jpg,1,1,-1\n")
    index = index_celeba(kaggle)
    assert len(index.files) == 12 and index.labels["attr_names"] == ATTRS
    assert index.targets[2].tolist() == [1, 1, 0] and index.targets[0].tolist() == [-1, -1, -1]  # -1 = not listed


def test_tinyimagenet_labels_match_imagefolder_and_official_val(tiny_root):
    index = index_tinyimagenet(tiny_root.parent)  # the parent of tiny-imagenet-200 works too
    assert index.labels["classes"] == sorted(WNIDS)
    assert index.labels["class_names"] == ["goldfish", "salamander", "bullfrog"]
    reference = ImageFolder(str(tiny_root / "train"))  # independent truth for the class numbering
    ours = {Path(f).name: int(t) for f, t in zip(index.files, index.targets)}
    for path, label in reference.samples:
        assert ours[Path(path).name] == label
    val = image_dataset("tinyimagenet", tiny_root, "val", image_size=8)
    assert len(val) == 6 and sorted(int(val[i][1]) for i in range(6)) == [0, 0, 1, 1, 2, 2]
    assert {Path(f).name for f in val.files} == {f"val_{i}.JPEG" for i in range(6)}
    grey = image_dataset("tinyimagenet", tiny_root, "train", image_size=16)
    x, _ = grey[grey.files.index(str(tiny_root / "train" / "n02" / "images" / "n02_0.JPEG"))]
    assert x.shape == (3, 16, 16) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_bitmoji_targets_from_train_csv(bitmoji_root):
    index = index_bitmoji(bitmoji_root)
    assert len(index.files) == 10
    assert index.targets.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, -1, -1]
    assert index.labels["columns"] == ["is_male", "nose_x", "nose_y"] and index.labels["in_csv"] == 8
    (bitmoji_root / "train.csv").unlink()
    assert index_bitmoji(bitmoji_root / "images").targets.tolist() == [-1] * 10


def test_folder_is_recursive_with_imagefolder_labels(tmp_path):
    rng = np.random.default_rng(3)
    for sub in ("cats", "dogs/big"):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
    noise_image(rng, 10, 10).save(tmp_path / "imgs" / "cats" / "a.png")
    noise_image(rng, 10, 12).save(tmp_path / "imgs" / "dogs" / "b.jpg")
    noise_image(rng, 10, 10).save(tmp_path / "imgs" / "dogs" / "big" / "c.webp")
    noise_image(rng, 10, 10).save(tmp_path / "imgs" / "loose.bmp")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    index = index_folder(tmp_path / "imgs")
    names = {Path(f).name: int(t) for f, t in zip(index.files, index.targets)}
    assert names == {"a.png": 0, "b.jpg": 1, "c.webp": 1, "loose.bmp": -1}
    (tmp_path / "imgs" / "loose.bmp").unlink()
    reference = ImageFolder(str(tmp_path / "imgs"))
    assert {Path(p).name: c for p, c in reference.samples} == {k: v for k, v in names.items() if v >= 0}


# --- splits -------------------------------------------------------------------------------------
def test_hash_split_is_a_partition_independent_of_seed_and_of_added_files(tmp_path):
    rng = np.random.default_rng(4)
    (tmp_path / "f").mkdir()
    for i in range(200):
        (tmp_path / "f" / f"{i:03d}.png").write_bytes(b"")  # splitting never opens the files
    index = index_folder(tmp_path / "f")
    train, val = split_positions(index, "train", 0.2, seed=0), split_positions(index, "val", 0.2, seed=7)
    assert not set(train) & set(val) and len(train) + len(val) == 200
    assert 20 <= len(val) <= 60  # ~ Binomial(200, 0.2)
    val_names = {index.files[i] for i in val}
    noise_image(rng, 4, 4).save(tmp_path / "f" / "new.png")
    bigger = index_folder(tmp_path / "f")
    assert val_names <= {bigger.files[i] for i in split_positions(bigger, "val", 0.2)}
    sub = split_positions(index, "all", subset=50, seed=1)
    assert len(sub) == 50 and np.array_equal(sub, split_positions(index, "all", subset=50, seed=1))


def test_tiny_splits_are_never_empty(tmp_path):
    (tmp_path / "f").mkdir()
    for i in range(3):
        (tmp_path / "f" / f"{i}.png").write_bytes(b"")
    index = index_folder(tmp_path / "f")
    assert len(split_positions(index, "val", 0.01)) == 1 and len(split_positions(index, "train", 0.01)) == 2
    assert len(split_positions(index, "train", 0.99)) == 1 and len(split_positions(index, "val", 0.99)) == 2


# --- transforms ---------------------------------------------------------------------------------
def _framed(w: int, h: int, side: int) -> Image.Image:
    """Red centre square of `side` px on blue."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 2] = 255
    y0, x0 = (h - side) // 2, (w - side) // 2
    arr[y0:y0 + side, x0:x0 + side] = (255, 0, 0)
    return Image.fromarray(arr)


@pytest.mark.parametrize("w,h,crop", [(178, 218, 1.0), (89, 109, 1.0), (178, 218, 0.5), (218, 178, 148 / 178)])
def test_centre_crop_takes_the_centre_square(w, h, crop):
    side = round(crop * min(w, h))
    out = ImageTransform(size=32, crop=crop)(_framed(w, h, side))
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert out[0].min() >= 250 and out[2].max() <= 5  # all red: exactly the centre square was kept


def test_original_and_half_size_copy_give_the_same_picture(tmp_path):
    """The 178x218 originals and the 89x109 copies crop the same region of the face."""
    rng = np.random.default_rng(5)
    big = noise_image(rng, 178, 218)
    small = big.resize((89, 109), Image.BILINEAR, reducing_gap=None)
    t = ImageTransform(size=64, crop=148 / 178)
    diff = (t(big).float() - t(small).float()).abs().mean() / 255
    assert diff < 0.01


def test_matches_a_torchvision_compose_and_fast_decode_is_close(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "x.jpg"
    noise_image(rng, 384, 384).save(path, quality=95)
    exact = ImageTransform(size=64, fast_decode=False).load(path)
    reference = reference_transform(64, 384)(Image.open(path))
    assert torch.equal(exact, (reference * 255).round().to(torch.uint8))
    fast = ImageTransform(size=64).load(path)  # libjpeg decodes at 1/2 scale (192 >= 2 x 64)
    assert (fast.float() - exact.float()).abs().mean() < 1.5


def test_grey_rgba_and_palette_become_rgb():
    grey = Image.new("L", (4, 4), 100)
    assert to_rgb(grey).getpixel((0, 0)) == (100, 100, 100)
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))  # fully transparent: shows the white background
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    rgb = to_rgb(rgba)
    assert rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (10, 20, 30)
    grey16 = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert to_rgb(grey16).getpixel((0, 0)) == (255, 255, 255)
    assert ImageTransform(size=4, channels=1)(rgba).shape == (1, 4, 4)


# --- bad input ----------------------------------------------------------------------------------
def test_truncated_and_non_image_files_name_the_file(bitmoji_root):
    bad = bitmoji_root / "images" / "0003.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    fake = bitmoji_root / "images" / "0005.jpg"
    fake.write_text("this is not a jpeg")
    ds = image_dataset("bitmoji", bitmoji_root, "all")
    with pytest.raises(GenlabError, match=r"0003\.jpg: corrupt or truncated image.*skip_corrupt"):
        ds[3]
    with pytest.raises(GenlabError, match=r"0005\.jpg: not an image file"):
        ds[5]


def test_skip_corrupt_drops_and_reports(bitmoji_root, caplog):
    (bitmoji_root / "images" / "0003.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    with caplog.at_level(logging.WARNING, logger="genlab.data"):
        ds = image_dataset("bitmoji", bitmoji_root, "all", skip_corrupt=True, progress=False)
    assert len(ds) == 9 and len(ds.skipped) == 1 and "0003.jpg" in ds.skipped[0]
    assert "skipped 1 unreadable image(s) of 10" in caplog.text
    assert ds.targets.tolist() == [0, 1, 0, 0, 1, 0, 1, -1, -1]  # labels stay with their images


def test_missing_empty_and_wrong_layouts(tmp_path, tiny_root):
    with pytest.raises(GenlabError, match=r"img_align_celeba.*genlab data download celeba --root"):
        index_celeba(tmp_path / "nowhere")
    with pytest.raises(GenlabError, match=r"tiny-imagenet-200.*genlab data download tinyimagenet"):
        index_tinyimagenet(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenlabError, match=r"no images .* in .*empty \(the folder is empty\)"):
        index_folder(tmp_path / "empty")
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(GenlabError, match=r"readme\.txt"):
        index_bitmoji(tmp_path / "empty")
    (tiny_root / "train" / "n99").mkdir()
    with pytest.raises(GenlabError, match=r"n99 is not a class listed in .*wnids\.txt"):
        index_tinyimagenet(tiny_root)
    (tiny_root / "train" / "n99").rmdir()
    (tiny_root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(GenlabError, match=r"val_annotations\.txt not found"):
        index_tinyimagenet(tiny_root)


def test_bad_attribute_file_names_the_line(celeba_root):
    attr = celeba_root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[4] = "000003.jpg 1 1"
    attr.write_text("\n".join(lines))
    with pytest.raises(GenlabError, match=r"list_attr_celeba\.txt, line 5: 2 values for 3 attributes"):
        index_celeba(celeba_root)


# --- config, registry, DataModule, info, download instructions -----------------------------------
def test_config_to_dataloader(bitmoji_root):
    from genlab.train.datamodule import GenlabDataModule

    cfg = load_config(None, ["data.name=bitmoji", f"data.root={bitmoji_root}", "data.channels=3",
                             "data.image_size=8", "data.batch_size=4", "data.val_fraction=0.3", "model.channels=[8,8]"])
    dm = GenlabDataModule(cfg.data)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.int64
    assert len(dm.train_set) + len(dm.val_set) == 10
    with pytest.raises(GenlabError, match="data.channels"):
        load_config(None, ["data.name=bitmoji", "data.channels=4"])
    with pytest.raises(GenlabError, match="data.crop"):
        load_config(None, ["data.name=celeba", "data.crop=1.5"])


def test_dataset_info_counts_resolutions_labels_and_preview(tiny_root, tmp_path):
    from rich.console import Console

    from genlab.data.info import dataset_info

    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)
    info = dataset_info("tinyimagenet", tiny_root, console=console, preview=tmp_path / "p.png")
    assert info["count"] == 18 and info["splits"] == {"train": 12, "val": 6}
    assert info["resolutions"] == {"16x16": 18} and info["modes"] == {"RGB": 17, "L": 1}
    assert info["labels"]["classes"] == 3
    assert Image.open(tmp_path / "p.png").size == (8 * 66 + 2, 3 * 66 + 2)  # 18 images, 8 per row


def test_celeba_and_bitmoji_download_say_where_to_put_the_files(tmp_path):
    from rich.console import Console

    from genlab.data.info import download

    for name, expected in (("celeba", "img_align_celeba/000001.jpg"), ("bitmoji", "train.csv")):
        out = tmp_path / f"{name}.txt"
        with open(out, "w") as fh, pytest.raises(GenlabError, match="nothing was downloaded"):
            download(name, tmp_path / name, console=Console(file=fh, width=200))
        assert expected in out.read_text() and str(tmp_path / name) in out.read_text()
