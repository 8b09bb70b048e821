"""Multi-channel files on disk: TIFF / npy / npz stacks, per-channel images grouped by a CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anymae.datasets.collate import collate_items
from anymae.datasets.image.files import DataError
from anymae.datasets.multichannel.io import read_array, write_stack
from anymae.datasets.sources import build_dataset
from anymae.tasks.commands.stats import StatsConfig, run_stats

MODEL = {"channels": ["dna", "er", "rna", "mito"], "img_size": 8}


def _stack(seed: int, c: int = 3, size: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1000, (c, size, size)).astype(np.float32)


@pytest.mark.parametrize("ext", ["tif", "npy", "npz"])
def test_stack_formats_round_trip(tmp_path: Path, ext: str) -> None:
    s = _stack(0)
    path = write_stack(tmp_path / f"a.{ext}", s)
    assert np.array_equal(read_array(path), s)


def test_folder_per_class_raw_values_channel_order_and_crop(tmp_path: Path) -> None:
    stacks = {}
    for i, (cls, ext) in enumerate([("a", "tif"), ("a", "npy"), ("b", "npz"), ("b", "tif")]):
        stacks[i] = _stack(i)
        arr = stacks[i] if ext != "npy" else np.moveaxis(stacks[i], 0, -1)  # an H×W×C file too
        write_stack(tmp_path / cls / f"s{i}.{ext}", arr)
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["rna", "dna", "er"],
               "use": ["er", "rna"], "normalize": False}  # fmt: skip
    ds = build_dataset(section, split="test", model_config=MODEL)
    assert ds.classes == ["a", "b"] and [ds[i][1] for i in range(4)] == [0, 0, 1, 1]
    x, _ = ds[1]
    assert torch.equal(x.channels, torch.tensor([1, 2]))  # er, rna as the model's ids
    assert torch.equal(x.pixels, torch.from_numpy(stacks[1][[2, 0], 1:9, 1:9]))  # centre crop 10 -> 8
    batch = collate_items(ds, [ds[i] for i in range(3)])
    assert batch[0].pixels.shape == (3, 2, 8, 8) and torch.equal(batch[0].channels, torch.tensor([1, 2]))


def test_normalization_per_image_and_with_dataset_statistics(tmp_path: Path) -> None:
    write_stack(tmp_path / "x.npy", _stack(3, c=2, size=8))
    base = {"source": "multichannel_files", "root": str(tmp_path / "x.npy"), "channels": ["dna", "er"]}
    x = build_dataset(base, split="test", model_config=MODEL)[0][0].pixels
    assert torch.allclose(x.mean((1, 2)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(x.var((1, 2), unbiased=False), torch.ones(2), atol=1e-3)
    raw = torch.from_numpy(_stack(3, c=2, size=8))
    by_name = {**base, "mean": {"er": 10.0, "dna": 1.0}, "std": {"er": 2.0, "dna": 4.0}}
    x = build_dataset(by_name, split="test", model_config=MODEL)[0][0].pixels
    assert torch.allclose(x[1], (raw[1] - 10) / 2) and torch.allclose(x[0], (raw[0] - 1) / 4)
    as_list = {**base, "use": ["er"], "mean": [1.0, 10.0], "std": [4.0, 2.0]}  # per stored channel
    assert torch.allclose(build_dataset(as_list, split="test", model_config=MODEL)[0][0].pixels[0], (raw[1] - 10) / 2)
    with pytest.raises(ValueError, match="no statistics for channel"):
        build_dataset({**base, "mean": {"dna": 0.0}, "std": {"dna": 1.0}}, split="test", model_config=MODEL)


def test_augmentation_is_seeded_random_crop_and_flips(tmp_path: Path) -> None:
    write_stack(tmp_path / "x.npy", _stack(4, size=16))
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"]}
    ds = build_dataset(section, split="pretrain", model_config=MODEL)
    torch.manual_seed(5)
    a = ds[0][0].pixels
    torch.manual_seed(5)
    assert torch.equal(a, ds[0][0].pixels) and a.shape == (3, 8, 8)
    crops = set()
    for s in range(12):
        torch.manual_seed(s)
        crops.add(ds[0][0].pixels.sum().item())
    assert len(crops) > 3


def test_wrong_channel_count_and_sizes_name_the_file(tmp_path: Path) -> None:
    write_stack(tmp_path / "bad.tif", _stack(0, c=2))
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"]}
    ds = build_dataset(section, split="test", model_config=MODEL)
    with pytest.raises(DataError, match=r"bad\.tif: expected a stack of 3 channels \['dna', 'er', 'rna'\]"):
        ds[0]
    with pytest.raises(ValueError, match="unknown channel name"):
        build_dataset({**section, "channels": ["dna", "golgi"]}, split="test", model_config=MODEL)
    write_stack(tmp_path / "small" / "s.npy", _stack(0, size=6))
    small = build_dataset({**section, "root": str(tmp_path / "small")}, split="test", model_config=MODEL)
    with pytest.raises(DataError, match=r"s\.npy: 6×6 pixels, smaller than the model's input 8×8"):
        small[0]
    write_stack(tmp_path / "good.npy", _stack(1))
    skip = build_dataset({**section, "root": str(tmp_path), "layout": "flat", "on_error": "skip"}, split="test",
                         model_config=MODEL)  # fmt: skip
    assert [skip[i][0].pixels.shape for i in range(3)] == [(3, 8, 8)] * 3  # bad.tif, good.npy, small/s.npy
    assert skip.skipped() == 2 and "bad.tif" in skip.skip_report() and "s.npy" in skip.skip_report()


def _write_csv_dataset(root: Path, n: int = 3) -> Path:
    rows = ["dna,er,label"]
    for i in range(n):
        dna = (np.random.default_rng(i).uniform(0, 60000, (8, 8))).astype(np.uint16)
        Image.fromarray(dna).save(root / f"dna{i}.png")  # 16-bit PNG
        write_stack(root / f"er{i}.tif", np.full((8, 8), i, np.float32))
        rows.append(f"dna{i}.png,er{i}.tif,{'ab'[i % 2]}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root / "index.csv"


def test_csv_of_channel_files(tmp_path: Path) -> None:
    index = _write_csv_dataset(tmp_path)
    section = {"source": "multichannel_csv", "csv": str(index), "channels": ["dna", "er"], "label_column": "label",
               "normalize": False}  # fmt: skip
    ds = build_dataset(section, split="test", model_config=MODEL)
    x, label = ds[2]
    assert label == 0 and ds.classes == ["a", "b"] and torch.equal(x.channels, torch.tensor([0, 1]))
    assert torch.equal(x.pixels[0], torch.from_numpy(np.asarray(Image.open(tmp_path / "dna2.png")).astype(np.float32)))
    assert torch.equal(x.pixels[1], torch.full((8, 8), 2.0))
    write_stack(tmp_path / "er1.tif", np.zeros((9, 8), np.float32))
    with pytest.raises(DataError, match=r"er1\.tif: channel 'er' is 9×8 but channel 'dna'"):
        ds[1]
    with pytest.raises(DataError, match=r"no column\(s\) \['rna'\]"):
        build_dataset({**section, "channels": ["dna", "rna"]}, split="test", model_config=MODEL)


def test_anymae_stats_gives_exact_per_channel_statistics(tmp_path: Path) -> None:
    stacks = [_stack(i, size=8) for i in range(3)]
    for i, s in enumerate(stacks):
        write_stack(tmp_path / f"s{i}.tif", s)
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"]}
    stats = run_stats(StatsConfig(data=section, batch_size=2))
    all_values = np.stack(stacks).astype(np.float64)  # 3×C×8×8
    assert np.allclose(stats.mean, all_values.mean(axis=(0, 2, 3)))
    assert np.allclose(stats.std, all_values.std(axis=(0, 2, 3)))
    assert stats.num_samples == 3 and stats.count == 3 * 64
