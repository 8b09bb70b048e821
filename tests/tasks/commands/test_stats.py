"""`anymae stats`: exact per-channel statistics of raw inputs, through the normalize: false convention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from anymae.core.config import ConfigError
from anymae.datasets.audio.files import Frontend
from anymae.datasets.audio.synthetic import write_audio_folder
from anymae.tasks.commands.stats import StatsConfig, channel_stats, raw_section, run_stats


def test_channel_stats_equal_a_brute_force_computation() -> None:
    torch.manual_seed(0)
    data = torch.randn(10, 3, 4, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 7
    stats = channel_stats(data.split(4), max_samples=None)
    flat = data.transpose(0, 1).reshape(3, -1).double()
    assert stats.count == 10 * 4 * 5 and stats.num_samples == 10
    assert torch.allclose(torch.tensor(stats.mean, dtype=torch.float64), flat.mean(1))
    assert torch.allclose(torch.tensor(stats.std, dtype=torch.float64), flat.std(1, unbiased=False))
    assert channel_stats(data.split(4), max_samples=6).num_samples == 6
    assert yaml.safe_load(stats.yaml_snippet())["data"]["std"] == pytest.approx(stats.std)


def test_audio_stats_are_those_of_the_raw_fbank(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 2, ("tone", "noise"), seconds=0.4)
    cfg = StatsConfig(data={"source": "audio_folder", "root": str(root)},
                      model={"num_mel_bins": 32, "target_length": 64}, batch_size=3)
    stats = run_stats(cfg)
    fe = Frontend(num_mel_bins=32, target_length=64, normalize=False)
    raw = torch.cat([fe(p) for p in sorted(root.rglob("*.wav"))]).double()  # 4×64×32
    assert stats.mean[0] == pytest.approx(float(raw.mean()), rel=1e-6)
    assert stats.std[0] == pytest.approx(float(raw.std(unbiased=False)), rel=1e-6)
    snippet = yaml.safe_load(stats.yaml_snippet())["data"]
    assert set(snippet) == {"mean", "std"} and isinstance(snippet["mean"], float)


def test_sources_without_normalize_are_refused() -> None:
    with pytest.raises(ConfigError, match="no 'normalize' field"):
        raw_section({"source": "synthetic_images"})


def test_samples_of_different_sizes_each_count_whole_and_channel_counts_must_agree() -> None:
    samples = [torch.tensor([[[1.0, 3.0]], [[10.0, 10.0]]]), torch.tensor([[[5.0]], [[20.0]]])]  # 2×1×2, 2×1×1
    stats = channel_stats(s.unsqueeze(0) for s in samples)
    assert stats.count == 3 and stats.num_samples == 2
    assert stats.mean == pytest.approx([3.0, 40 / 3])  # (1 + 3 + 5) / 3, (10 + 10 + 20) / 3
    assert stats.std == pytest.approx([(8 / 3) ** 0.5, (200 / 9) ** 0.5])  # population std of 1,3,5 and 10,10,20
    with pytest.raises(ValueError, match=r"sample 1 has 3 channel\(s\), the samples before it 2; statistics per "
                                         r"channel need one channel count"):
        channel_stats([torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)])
