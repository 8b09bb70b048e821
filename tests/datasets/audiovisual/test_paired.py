"""Paired image folders (MultiMAE-style): one crop and one flip for every modality of a sample,
robust depth standardization, incomplete pairs named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anymae.datasets.audiovisual.synthetic import write_paired_folder
from anymae.datasets.paired import robust_standardize
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset

MODEL = {"modalities": {"rgb": 3, "depth": 1}, "img_size": 16}


def test_robust_standardize_by_hand() -> None:
    x = torch.arange(10, dtype=torch.float32).reshape(1, 2, 5)  # values 0..9
    kept = torch.arange(1, 9, dtype=torch.float32)  # the 10–90 % trimmed values: 1..8
    mu, var = kept.mean(), kept.var()  # 4.5, unbiased 6.0
    torch.testing.assert_close(robust_standardize(x), (x - mu) / torch.sqrt(var + 1e-6))
    assert float(var) == 6.0


def _ramp_pair(root: Path, name: str) -> None:
    """RGB and 16-bit depth of one scene: red = 8·column, green = 8·row; depth = 2000·column."""
    ys, xs = np.mgrid[0:32, 0:32]
    rgb = np.stack([8 * xs, 8 * ys, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    depth = (2000 * xs).astype(np.uint16)
    for m, a in (("rgb", rgb), ("depth", depth)):
        (root / m).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / m / f"{name}.png")


def test_every_modality_gets_the_same_crop_and_flip(tmp_path: Path) -> None:
    _ramp_pair(tmp_path, "a")
    data = SeededSamples(build_dataset({"source": "paired_folder", "root": str(tmp_path), "standardize": []},
                                       split="pretrain", model_config=MODEL), base_seed=0)  # fmt: skip
    flips = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        x, _, _ = data[0]
        assert x["rgb"].shape == (3, 16, 16) and x["depth"].shape == (1, 16, 16)
        red = (x["rgb"][0] * 0.229 + 0.485) * 255 / 8  # the column index the red channel encodes
        col = x["depth"][0] * 65535 / 2000  # the column index the depth encodes (16-bit read as /65535)
        assert float((red - col).abs().max()) < 0.6, epoch  # the same box, the same flip
        flips.add(bool(col[:, 0].mean() > col[:, -1].mean()))  # columns run backwards after a flip
    assert flips == {True, False}  # both outcomes seen, always shared


def test_evaluation_centre_crops_and_standardizes_depth(tmp_path: Path) -> None:
    write_paired_folder(tmp_path, num_classes=2, per_class=2, size=32)
    data = build_dataset({"source": "paired_folder", "root": str(tmp_path)}, split="test", model_config=MODEL)
    x, y = data[2]
    assert y == 1 and data.labels == [0, 0, 1, 1]
    depth = x["depth"].reshape(-1).sort().values
    kept = depth[int(0.1 * 256) : int(0.9 * 256)]
    assert abs(float(kept.mean())) < 1e-4 and float(kept.var()) == pytest.approx(1.0, abs=1e-3)
    assert x["rgb"].shape == (3, 16, 16)


def test_an_incomplete_pair_names_the_file_and_the_missing_modality(tmp_path: Path) -> None:
    write_paired_folder(tmp_path, num_classes=2, per_class=2, size=32)
    (tmp_path / "depth" / "class_01" / "img_001.png").unlink()
    with pytest.raises(DataError, match=r"rgb/class_01/img_001.png has no 'depth' image"):
        build_dataset({"source": "paired_folder", "root": str(tmp_path)}, split="test", model_config=MODEL)
    (tmp_path / "rgb" / "class_01" / "img_001.png").unlink()
    (tmp_path / "depth" / "class_00" / "extra.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"depth/class_00/extra.png has no 'rgb' image"):
        build_dataset({"source": "paired_folder", "root": str(tmp_path)}, split="test", model_config=MODEL)
    with pytest.raises(DataError, match="has no folder 'nir'"):
        build_dataset({"source": "paired_folder", "root": str(tmp_path), "modalities": ["rgb", "nir"]},
                      split="test", model_config=MODEL)


def test_an_unreadable_partner_is_a_named_error_or_a_counted_skip(tmp_path: Path) -> None:
    write_paired_folder(tmp_path, num_classes=1, per_class=3, size=32)
    bad = tmp_path / "depth" / "class_00" / "img_001.png"
    bad.write_bytes(b"not a png")
    section = {"source": "paired_folder", "root": str(tmp_path)}
    with pytest.raises(DataError, match="img_001.png"):
        build_dataset(section, split="test", model_config=MODEL)[1]
    data = build_dataset({**section, "on_error": "skip"}, split="test", model_config=MODEL)
    assert data[1][0]["depth"].shape == (1, 16, 16) and data.skipped_indices() == [1]
