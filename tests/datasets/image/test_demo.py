"""Tests for anymae/datasets/demo.py: crops of the photos that installed packages ship."""

from __future__ import annotations

import hashlib

import pytest
import torch

pytest.importorskip("skimage", reason="the demo photos need scikit-image==0.26.0")

from anymae.datasets.image.demo import (  # noqa: E402
    PHOTOS,
    Photo,
    demo_photo_crops,
    demo_unlabeled,
    photo_path,
    split_cells,
)

SIZE = 16


@pytest.fixture(scope="module")
def crops():
    return demo_photo_crops(SIZE, n_train_per_photo=24, n_test_per_photo=8, seed=0)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection test of half-open boxes a: A×4 and b: B×4 -> bool A×B."""
    a, b = a[:, None], b[None]  # A×1×4, 1×B×4
    return (torch.maximum(a[..., 0], b[..., 0]) < torch.minimum(a[..., 2], b[..., 2])) & (
        torch.maximum(a[..., 1], b[..., 1]) < torch.minimum(a[..., 3], b[..., 3])
    )


def _inside(boxes: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Is each box (N×4) inside at least one region (K×4)? -> bool N."""
    b, r = boxes[:, None], regions[None]  # N×1×4, 1×K×4
    fits = (b[..., :2] >= r[..., :2]).all(-1) & (b[..., 2:] <= r[..., 2:]).all(-1)  # N×K
    return fits.any(1)


def test_classes_shapes_and_labels(crops):
    train, test, classes = crops
    assert len(classes) >= 8 and classes == [p.name for p in PHOTOS]
    assert train.images.shape == (24 * len(classes), 3, SIZE, SIZE)
    assert test.images.shape == (8 * len(classes), 3, SIZE, SIZE)
    assert train.images.dtype == torch.float32
    assert torch.bincount(test.labels).tolist() == [8] * len(classes)
    x, y = test[8]
    assert x.shape == (3, SIZE, SIZE) and y == 1
    # ImageNet-normalized: values reach below 0 and above 1.
    assert train.images.min() < -1.5 and train.images.max() > 1.5


def test_train_and_test_regions_share_no_pixel(crops):
    train, test, classes = crops
    unlabeled = demo_unlabeled(SIZE, n_per_photo=16, seed=0)
    for p in range(len(classes)):
        tr, te, un = (d.boxes[d.photo == p] for d in (train, test, unlabeled))
        assert _inside(tr, train.regions[p]).all() and _inside(te, test.regions[p]).all()
        assert _inside(un, unlabeled.regions[p]).all()
        assert not _overlap(train.regions[p], test.regions[p]).any()
        assert not _overlap(tr, te).any() and not _overlap(un, te).any()
        assert ((tr[:, 2] - tr[:, 0]) == (tr[:, 3] - tr[:, 1])).all()  # square crops


def test_split_cells_cover_the_image_exactly_once():
    train, test = split_cells(96, 64, test=False), split_cells(96, 64, test=True)
    assert len(train) == 4 and len(test) == 2
    area = torch.zeros(64, 96, dtype=torch.long)
    for _, (x0, y0, x1, y1) in train + test:
        area[y0:y1, x0:x1] += 1
    assert (area == 1).all()
    assert {c for c, _ in test} == {2, 3}  # top-right and bottom-left of the 2×3 grid


def test_deterministic_from_seed(crops):
    train, test, _ = crops
    train2, test2, _ = demo_photo_crops(SIZE, n_train_per_photo=24, n_test_per_photo=8, seed=0)
    assert torch.equal(train.images, train2.images) and torch.equal(test.boxes, test2.boxes)
    other, _, _ = demo_photo_crops(SIZE, n_train_per_photo=24, n_test_per_photo=8, seed=1)
    assert not torch.equal(train.boxes, other.boxes)


def test_unlabeled_crops_are_unlabeled_and_differ_from_train(crops):
    train = crops[0]
    unlabeled = demo_unlabeled(SIZE, n_per_photo=24, seed=0)
    assert (unlabeled.labels == -1).all() and unlabeled.classes == []
    assert torch.equal(unlabeled.photo, train.photo)
    assert not torch.equal(unlabeled.boxes, train.boxes)
    assert unlabeled[0][1] == -1


def test_photo_files_are_not_modified():
    before = {p.name: hashlib.sha256(photo_path(p).read_bytes()).hexdigest() for p in PHOTOS}
    demo_unlabeled(SIZE, n_per_photo=1, seed=3)
    after = {p.name: hashlib.sha256(photo_path(p).read_bytes()).hexdigest() for p in PHOTOS}
    assert before == after


def test_missing_package_or_file_names_what_to_install():
    with pytest.raises(ModuleNotFoundError, match="no_such_pkg_anymae"):
        photo_path(Photo("x", "no_such_pkg_anymae", "a.png", "none"))
    with pytest.raises(FileNotFoundError, match="scikit-image==0.26.0"):
        photo_path(Photo("x", "skimage", "data/not_shipped.png", "none"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_test_per_photo"):
        demo_photo_crops(SIZE, 4, 0)
    with pytest.raises(ValueError, match="scale"):
        demo_unlabeled(SIZE, 4, scale=(0.5, 0.1))
