"""Volume files: .npy and NIfTI reading, the CT intensity window, crops, the `volume_files` source."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from anymae.datasets.seeding import SeededSamples
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset, files_section
from anymae.datasets.volume.files import VolumeFiles, window
from anymae.datasets.volume.io import read_volume, write_nifti
from anymae.datasets.volume.synthetic import write_volume_folder


def _vol(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1000, 1000, shape).astype(np.float32)


def test_npy_volumes_are_read_channels_first(tmp_path: Path) -> None:
    three, four = _vol((4, 5, 6)), _vol((2, 4, 5, 6), 1)
    np.save(tmp_path / "a.npy", three)
    np.save(tmp_path / "b.npy", four.astype(np.int16))
    assert np.array_equal(read_volume(tmp_path / "a.npy"), three[None])
    assert np.array_equal(read_volume(tmp_path / "b.npy", channels=2), four.astype(np.int16).astype(np.float32))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_volumes_are_read_with_channels_on_the_fourth_axis(tmp_path: Path, suffix: str) -> None:
    three, four = _vol((4, 5, 6)), _vol((4, 5, 6, 3), 1)
    write_nifti(tmp_path / f"a{suffix}", three)
    write_nifti(tmp_path / f"b{suffix}", four)
    assert np.allclose(read_volume(tmp_path / f"a{suffix}"), three[None])
    assert np.allclose(read_volume(tmp_path / f"b{suffix}", channels=3), np.moveaxis(four, -1, 0))


def test_nifti_scaling_gives_hounsfield_units(tmp_path: Path) -> None:
    stored = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(2.0, -1024.0)
    nib.save(image, str(tmp_path / "ct.nii.gz"))
    assert np.array_equal(read_volume(tmp_path / "ct.nii.gz")[0], stored * 2.0 - 1024.0)


def test_a_wrong_channel_count_names_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "two.npy", _vol((2, 4, 4, 4)))
    with pytest.raises(DataError, match=r"two\.npy: 2 channel\(s\) .* the model takes 1"):
        read_volume(tmp_path / "two.npy", channels=1)


def test_the_ct_window_clips_and_scales_to_unit_range() -> None:
    x = torch.tensor([-1000.0, -175.0, 37.5, 250.0, 3000.0])
    assert torch.allclose(window(x, (-175.0, 250.0)), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert torch.equal(window(x, None), x)


def test_centre_crops_and_seeded_random_crops(tmp_path: Path) -> None:
    vol = np.arange(6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10)
    np.save(tmp_path / "v.npy", vol)
    centred = VolumeFiles(tmp_path, img_size=(4, 4, 4), intensity_window=None)
    x, label = centred[0]
    assert label == -1 and torch.equal(x[0], torch.from_numpy(vol[1:5, 2:6, 3:7]))
    seeded = SeededSamples(VolumeFiles(tmp_path, img_size=4, intensity_window=None, augment="pretrain"), 0)
    a, b = seeded[0][0], seeded[0][0]
    assert a.shape == (1, 4, 4, 4) and torch.equal(a, b)  # the same sample seed, the same crop
    values = set(vol.flatten().tolist())
    assert set(a.flatten().tolist()) <= values  # flips / rotations / crops only (jitter p 0.1 not drawn here)
    with pytest.raises(DataError, match=r"v\.npy: 6×8×10 voxels, smaller than the model's input 12×12×12"):
        VolumeFiles(tmp_path, img_size=12)[0]


def test_the_source_reads_a_class_folder_with_the_model_defaults(tmp_path: Path) -> None:
    root = write_volume_folder(tmp_path / "vols", 2, 2, size=10, fmt="nii.gz")
    write_volume_folder(root, 1, 2, size=10, fmt="npy", seed=3)
    data = build_dataset({"source": "volume_files", "root": str(root)}, split="test",
                         model_config={"img_size": 8, "in_chans": 1})
    assert len(data) == 6 and data.labels == [0, 0, 0, 1, 1, 1]
    x, label = data[5]
    assert x.shape == (1, 8, 8, 8) and label == 1 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert files_section("volume", str(root)) == {"source": "volume_files", "root": str(root), "layout": "flat"}


def test_bad_options_are_named(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", _vol((4, 4, 4)))
    with pytest.raises(ValueError, match="data.intensity_window"):
        VolumeFiles(tmp_path, intensity_window=[250.0, -175.0])
    with pytest.raises(ValueError, match="data.img_size"):
        VolumeFiles(tmp_path, img_size=(4, 4))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no volume files under"):
        VolumeFiles(tmp_path / "empty")
    with pytest.raises(DataError, match=r"volume root .*missing does not exist"):
        VolumeFiles(tmp_path / "missing")
