"""Feature files: reading .npy / .safetensors, LV-MAE's windows, padding a batch, the data source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.datasets.features.files import FeatureFiles, pad_batch, read_features, sample_window
from anymae.datasets.features.synthetic import write_feature_folder
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset


def test_read_npy_and_safetensors(tmp_path: Path) -> None:
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "a.npy", rows)
    assert read_features(tmp_path / "a.npy", in_dim=4).dtype == np.float32
    from safetensors.numpy import save_file

    save_file({"emb": rows.astype(np.float32)}, str(tmp_path / "b.safetensors"))
    assert np.array_equal(read_features(tmp_path / "b.safetensors"), rows)
    save_file({"emb": rows.astype(np.float32), "other": rows[:1].astype(np.float32)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(DataError, match="c.safetensors: holds 2 tensors"):
        read_features(tmp_path / "c.safetensors")
    assert read_features(tmp_path / "c.safetensors", key="other").shape == (1, 4)
    with pytest.raises(DataError, match="a.npy: rows of 4 features, but the model takes in_dim=5"):
        read_features(tmp_path / "a.npy", in_dim=5)


def test_window_follows_lvmae() -> None:
    rows = torch.arange(300.0)[:, None]  # a 300-segment clip, one feature = its index
    torch.manual_seed(0)
    lengths = set()
    for _ in range(300):
        w = sample_window(rows, min_len=2, max_len=256)
        assert 2 <= len(w) <= 256 and torch.equal(w[:, 0], torch.arange(w[0, 0], w[0, 0] + len(w)))  # contiguous
        lengths.add(len(w))
    assert len(lengths) > 100  # lengths spread over 2..256
    short = torch.arange(3.0)[:, None]
    torch.manual_seed(1)
    w = sample_window(short, min_len=2, max_len=256)  # a 3-segment clip: the whole clip or a part, tiled x3
    assert len(w) % 3 == 0 and len(w) >= 6
    assert len(sample_window(torch.zeros(1, 4), min_len=2, max_len=256)) == 8  # one segment: tiled x8
    assert len(sample_window(torch.zeros(1, 4), min_len=2, max_len=5)) == 5  # cut to max_len after tiling


def test_pad_batch() -> None:
    batch = pad_batch([torch.ones(3, 2), 2 * torch.ones(5, 2)])
    assert batch.shape == (2, 5, 2) and batch.valid.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert torch.equal(batch.features[0, 3:], torch.zeros(2, 2)) and batch.lengths.tolist() == [3, 5]


def test_source_reads_a_folder(tmp_path: Path) -> None:
    root = write_feature_folder(tmp_path / "f", 4, dim=8, min_len=3, max_len=30, fmt="safetensors")
    model = {"in_dim": 8, "max_len": 16}
    ds = build_dataset({"source": "feature_files", "root": str(root)}, split="test", model_config=model)
    assert isinstance(ds, FeatureFiles) and len(ds) == 4
    x, label = ds[0]
    whole = read_features(ds.samples[0][0])
    assert label == -1 and torch.equal(x, torch.from_numpy(whole[:16]))  # evaluation: the first max_len rows
    pre = build_dataset({"source": "feature_files", "root": str(root), "min_len": 3}, split="pretrain",
                        model_config=model)
    assert all(1 <= len(pre[i][0]) <= 16 for i in range(4))
    with pytest.raises(ValueError, match="in_dim"):
        build_dataset({"source": "feature_files", "root": str(root)}, split="test", model_config={})
