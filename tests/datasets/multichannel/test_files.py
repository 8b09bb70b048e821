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


# --- hostile input (issue 17): non-finite values, strings / objects, declared sizes, stacks of any size

def test_nan_and_inf_are_refused_at_read_naming_file_and_channel(tmp_path: Path) -> None:
    s = _stack(0)
    s[1, 4, 7] = np.nan
    s[1, 5, 0] = np.inf
    write_stack(tmp_path / "a" / "nan.tif", s)
    over = _stack(1).astype(np.float64)
    over[2, 0, 3] = 1e39  # beyond float32: Inf once read as float32
    write_stack(tmp_path / "b" / "over.npy", over)
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"]}
    ds = build_dataset(section, split="test", model_config=MODEL)
    with pytest.raises(DataError, match=r"nan\.tif: channel 'er' has 2 NaN or Inf value\(s\) "
                                        r"\(first at row 4, column 7;"):
        ds[0]
    with pytest.raises(DataError, match=r"over\.npy: channel 'rna' has 1 NaN or Inf value\(s\) "
                                        r"\(first at row 0, column 3;"):
        ds[1]
    plane = np.ones((8, 8), np.float32)
    plane[2, 2] = -np.inf
    write_stack(tmp_path / "c" / "er0.tif", plane)
    (tmp_path / "c" / "index.csv").write_text("er\ner0.tif\n")
    csv = build_dataset({"source": "multichannel_csv", "csv": str(tmp_path / "c" / "index.csv"), "channels": ["er"]},
                        split="test", model_config=MODEL)
    with pytest.raises(DataError, match=r"er0\.tif: channel 'er' has 1 NaN or Inf value\(s\) "
                                        r"\(first at row 2, column 2;"):
        csv[0]


def test_npy_of_strings_or_objects_is_a_data_error_even_with_skip(tmp_path: Path) -> None:
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    write_stack(tmp_path / "good.npy", _stack(2))
    with pytest.raises(DataError, match=r"text\.npy: expected an array of real numbers, found dtype <U1"):
        read_array(tmp_path / "text.npy")
    with pytest.raises(DataError, match=r"objects\.npy: expected an array of real numbers, found dtype object "
                                        r"\(object arrays are never unpickled\)"):
        read_array(tmp_path / "objects.npy")
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"],
               "on_error": "skip"}
    ds = build_dataset(section, split="test", model_config=MODEL)
    assert [ds[i][0].pixels.shape for i in range(3)] == [(3, 8, 8)] * 3
    assert ds.skipped() == 2 and "objects.npy" in ds.skip_report() and "text.npy" in ds.skip_report()


def test_declared_sizes_are_checked_before_allocating(tmp_path: Path) -> None:
    import zipfile

    from tests.fuzz.bad_inputs import assert_named_error, bounded_memory
    from tests.fuzz.test_image import tiff_bytes

    header = {"descr": "<f4", "fortran_order": False, "shape": (3, 50_000, 50_000)}
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(16))
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("image.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(16))
    (tmp_path / "bomb.tif").write_bytes(tiff_bytes(9000, 9000))
    declared = 3 * 50_000 * 50_000 * 4
    with bounded_memory(20):
        m = assert_named_error(lambda: read_array(tmp_path / "bomb.npy"), tmp_path / "bomb.npy")
        assert f"shape (3, 50000, 50000) float32 ({declared + 128:,} bytes), but the file holds only 144 bytes" in m
        m = assert_named_error(lambda: read_array(tmp_path / "bomb.npz"), tmp_path / "bomb.npz")
        assert f"({declared + 128:,} bytes), but the file holds only 144 bytes" in m  # the member's bytes
        m = assert_named_error(lambda: read_array(tmp_path / "bomb.tif"), tmp_path / "bomb.tif")
        assert "shape (9000, 9000) float32 (324,000,000 bytes), but the file holds only 150 bytes" in m


def test_zero_sized_stacks_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((3, 0, 5), np.float32))
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"]}
    with pytest.raises(DataError, match=r"flat\.npy: the stack is 0×5 pixels; expected at least 1×1"):
        build_dataset({**section, "img_size": None}, split="test", model_config={**MODEL, "img_size": None})[0]


def test_anymae_stats_over_stacks_of_different_sizes(tmp_path: Path) -> None:
    stacks = [_stack(0, size=8), _stack(1, size=12), np.moveaxis(_stack(2, size=5), 0, -1)]
    for i, s in enumerate(stacks):
        write_stack(tmp_path / f"s{i}.{['tif', 'npy', 'npy'][i]}", s)
    section = {"source": "multichannel_files", "root": str(tmp_path), "channels": ["dna", "er", "rna"],
               "img_size": None}
    stats = run_stats(StatsConfig(data=section, batch_size=3, model={**MODEL, "img_size": None}))
    chw = [stacks[0], stacks[1], np.moveaxis(stacks[2], -1, 0)]
    per_channel = np.concatenate([s.reshape(3, -1) for s in chw], axis=1).astype(np.float64)  # 3×(64+144+25)
    assert stats.count == 64 + 144 + 25 and stats.num_samples == 3
    assert np.allclose(stats.mean, per_channel.mean(1)) and np.allclose(stats.std, per_channel.std(1))
