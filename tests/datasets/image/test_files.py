"""Tests for anymae/datasets/images.py: layouts, RGB loading, errors and counted skips."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import functional as F

from anymae.datasets.image.files import DataError, ImageFiles, load_rgb
from anymae.datasets.image.synthetic import write_image_folder, write_truncated_jpeg


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _rgb(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


# ---- layouts ---------------------------------------------------------------------------


def test_class_layout_sorted_classes_labels_and_samples(tmp_path):
    write_image_folder(tmp_path, 2, ["zebra", "apple", "mango"], size=8)
    ds = ImageFiles(tmp_path)
    assert ds.layout == "classes" and ds.classes == ["apple", "mango", "zebra"]
    assert ds.class_to_idx == {"apple": 0, "mango": 1, "zebra": 2}
    assert [(p.relative_to(tmp_path).as_posix(), y) for p, y in ds.samples] == [
        ("apple/apple_0000.png", 0),
        ("apple/apple_0001.png", 0),
        ("mango/mango_0000.png", 1),
        ("mango/mango_0001.png", 1),
        ("zebra/zebra_0000.png", 2),
        ("zebra/zebra_0001.png", 2),
    ]
    image, label = ds[4]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
    assert label == 2
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(ds.samples[4][0])))


def test_transform_is_applied(tmp_path):
    write_image_folder(tmp_path, 1, 2, size=8)
    x, label = ImageFiles(tmp_path, transform=F.to_tensor)[1]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 8, 8) and label == 1


def test_flat_layout_is_recursive_and_unlabeled(tmp_path):
    _save(tmp_path / "b.png", _rgb(1))
    _save(tmp_path / "sub" / "deeper" / "a.JPG", _rgb(2))  # extension case does not matter
    _save(tmp_path / "sub" / "c.webp", _rgb(3))
    (tmp_path / "notes.txt").write_text("not an image")
    _save(tmp_path / "._b.png", _rgb(4))  # hidden (macOS resource fork): ignored
    ds = ImageFiles(tmp_path)
    assert ds.layout == "flat" and ds.classes == []
    assert [p.relative_to(tmp_path).as_posix() for p, _ in ds.samples] == [
        "b.png",
        "sub/c.webp",
        "sub/deeper/a.JPG",
    ]
    assert all(label == -1 for _, label in ds.samples) and ds[0][1] == -1


def test_auto_needs_two_class_folders_and_no_loose_images(tmp_path):
    _save(tmp_path / "one" / "a.png", _rgb(1))
    _save(tmp_path / "one" / "b.png", _rgb(1))
    assert ImageFiles(tmp_path).layout == "flat"  # a single sub-folder is not a class layout
    _save(tmp_path / "two" / "a.png", _rgb(1))
    assert ImageFiles(tmp_path).layout == "classes"
    _save(tmp_path / "loose.png", _rgb(1))
    assert ImageFiles(tmp_path).layout == "flat"
    assert len(ImageFiles(tmp_path, layout="flat")) == 4


def test_classes_layout_rejects_loose_images_and_empty_class_folders(tmp_path):
    write_image_folder(tmp_path, 1, 2, size=8)
    _save(tmp_path / "loose.png", _rgb(1))
    with pytest.raises(ValueError, match="loose.png"):
        ImageFiles(tmp_path, layout="classes")
    (tmp_path / "loose.png").unlink()
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class"):
        ImageFiles(tmp_path)


def test_missing_empty_and_imageless_roots_name_the_path_and_extensions(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ImageFiles(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"no image files under .*\.jpg.*\.webp"):
        ImageFiles(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=str(tmp_path)):
        ImageFiles(tmp_path)
    with pytest.raises(ValueError, match="is a file; expected a folder or one image"):
        ImageFiles(tmp_path / "a.txt")


def test_custom_extensions_and_bad_options(tmp_path):
    _save(tmp_path / "a.png", _rgb(1))
    _save(tmp_path / "b.bmp", _rgb(1))
    assert len(ImageFiles(tmp_path, extensions=("bmp",))) == 1
    with pytest.raises(ValueError, match="layout"):
        ImageFiles(tmp_path, layout="folders")
    with pytest.raises(ValueError, match="on_error"):
        ImageFiles(tmp_path, on_error="ignore")


# ---- RGB conversion --------------------------------------------------------------------


def test_grayscale_and_palette_become_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    out = np.asarray(load_rgb(_save(tmp_path / "g.png", gray)))
    assert out.shape == (8, 8, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))
    rgb = _rgb(200)
    rgb[:4, :, 0] = 17
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "p.png")), rgb)


def test_alpha_is_composited_onto_black(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:2, ..., 3] = 255  # top half opaque
    rgba[2:, ..., 3] = 0  # bottom half transparent
    out = np.asarray(load_rgb(_save(tmp_path / "a.png", rgba)))
    assert (out[:2] == 200).all() and (out[2:] == 0).all()


def test_16_bit_grayscale_keeps_the_top_8_bits(tmp_path):
    a = (np.arange(16, dtype=np.uint16) * 4096 + 255).reshape(4, 4)
    for name in ("g16.png", "g16.tif"):
        img = load_rgb(_save(tmp_path / name, a))
        assert np.array_equal(np.asarray(img)[..., 1], (a >> 8).astype(np.uint8)), name


def test_float_images_are_stretched_min_to_max(tmp_path):
    a = np.array([[-2.0, 0.0], [2.0, 6.0]], dtype=np.float32)
    out = np.asarray(load_rgb(_save(tmp_path / "f.tif", a)))[..., 0]
    assert out.tolist() == [[0, 64], [128, 255]]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((4, 8, 3), dtype=np.uint8))  # 8 wide, 4 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_rgb(tmp_path / "r.jpg").size == (4, 8)


# ---- errors and skips ------------------------------------------------------------------


def _folder_with_bad_files(root: Path) -> ImageFiles:
    for k in range(4):
        _save(root / f"{k}_good.png", _rgb(10 * (k + 1)))
    write_truncated_jpeg(root / "1_truncated.jpg")
    (root / "3_garbage.png").write_bytes(b"this is not a png")
    return ImageFiles(root, transform=F.pil_to_tensor, on_error="skip")


def test_unreadable_files_raise_data_error_naming_file_and_reason(tmp_path):
    write_truncated_jpeg(tmp_path / "cut.jpg")
    (tmp_path / "junk.png").write_bytes(b"junk")
    ds = ImageFiles(tmp_path)
    with pytest.raises(DataError, match=r"cut\.jpg.*truncated"):
        ds[0]
    with pytest.raises(DataError, match=r"junk\.png.*cannot identify"):
        ds[1]
    assert issubclass(DataError, ValueError)


def test_skip_replaces_by_the_next_readable_sample_and_counts(tmp_path, caplog):
    ds = _folder_with_bad_files(tmp_path)
    names = [p.name for p, _ in ds.samples]
    assert names == [
        "0_good.png", "1_good.png", "1_truncated.jpg", "2_good.png", "3_garbage.png", "3_good.png"
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="anymae.datasets.image.files"):
        for _ in range(2):  # a second epoch neither logs nor counts again
            values = [int(ds[i][0][0, 0, 0]) for i in range(len(ds))]
    assert values == [10, 20, 30, 30, 40, 40]
    assert ds.skipped() == 2
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and "1_truncated.jpg" in logged[0] and "3_garbage.png" in logged[1]
    report = ds.skip_report()
    assert "skipped 2" in report and "1_truncated.jpg" in report and "3_garbage.png" in report


def test_skip_wraps_around_at_the_end(tmp_path):
    _save(tmp_path / "a.png", _rgb(7))
    (tmp_path / "b.png").write_bytes(b"bad")
    ds = ImageFiles(tmp_path, on_error="skip")
    assert np.asarray(ds[1][0])[0, 0, 0] == 7 and ds.skipped() == 1


def test_skips_in_dataloader_workers_are_counted_in_the_main_process(tmp_path):
    ds = _folder_with_bad_files(tmp_path)
    assert ds.skipped() == 0 and "no unreadable files" in ds.skip_report()
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    values = torch.cat([x[:, 0, 0, 0] for x, _ in loader]).tolist()
    assert values == [10, 20, 30, 30, 40, 40]
    assert ds.skipped() == 2


def test_all_unreadable_raises_instead_of_looping(tmp_path):
    for k in range(3):
        (tmp_path / f"{k}.png").write_bytes(b"bad")
    ds = ImageFiles(tmp_path, on_error="skip")
    with pytest.raises(DataError, match="all 3 image files"):
        ds[1]
    assert ds.skipped() == 3


def test_a_single_image_file_is_a_dataset_of_one(tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(np.full((6, 5, 3), 200, dtype=np.uint8)).save(path)
    data = ImageFiles(path)
    assert len(data) == 1 and data.samples == [(path, -1)]
    img, label = data[0]
    assert img.size == (5, 6) and label == -1
    with pytest.raises(ValueError, match="is a file"):
        ImageFiles(path, layout="classes")
