"""`data.source: mixed`: OmniMAE's images + clips in one run, every batch from one source."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.cli import main
from anymae.core.config import ConfigError
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.mixed import SourceItems
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.checkpoint import load_checkpoint

pytest.importorskip("decord")

REPO = Path(__file__).resolve().parents[2]


def _clips(root: Path, n: int) -> Path:
    from anymae.datasets.video.synthetic import write_video

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        write_video(root / f"clip_{i}.mp4", rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8))
    return root


def test_mixed_items_are_one_key_dicts_and_batches_never_mix(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 4, 2, size=40, fmt="png", seed=0)
    clips = _clips(tmp_path / "clips", 3)
    section = {"source": "mixed", "sources": {"image": {"source": "image_folder", "root": str(images), "img_size": 32},
                                              "video": {"source": "video_files", "root": str(clips)}},
               "repeats": {"video": 2.0}}  # fmt: skip
    data = build_dataset(section, split="pretrain", model_config={"img_size": 32, "num_frames": 4})
    assert isinstance(data, SourceItems) and data.sizes == [8, 3] and data.repeats == [1.0, 2.0]
    x, _ = data[9]  # the second clip
    assert list(x) == ["video"] and x["video"].shape == (3, 4, 32, 32)
    batch = data.collate_x([data[0][0], data[1][0]])
    assert list(batch) == ["image"] and batch["image"].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="mixes the sources"):
        data.collate_x([data[0][0], data[9][0]])
    with pytest.raises(ConfigError, match="data.repeats"):
        build_dataset({**section, "repeats": {"audio": 1.0}}, split="pretrain", model_config={"img_size": 32})


def test_omnimae_pretrains_on_images_and_clips_from_the_cli(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images = write_image_folder(tmp_path / "images", 8, 2, size=40, fmt="png", seed=0)
    clips = _clips(tmp_path / "clips", 8)
    out = tmp_path / "run"
    code = main(["pretrain", "--config", str(REPO / "configs" / "omnimae_mixed_tiny_cpu.yaml"),
                 f"data.sources.image.root={images}", f"data.sources.video.root={clips}", f"run.out_dir={out}",
                 "optim.batch_size=4", "run.max_steps=6", "run.num_workers=0", "run.log_every=1",
                 "run.tensorboard=false"])  # fmt: skip
    assert code == 0
    state = load_checkpoint(out / "last.pt")
    # 16 images / 4 + 8 clips / 4 = 6 one-source steps per epoch
    assert state["run"]["steps_per_epoch"] == 6 and state["step"] == 6
    with open(out / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
