"""run.cache: decoded files held in memory give exactly the batches of an uncached run (augmentations
stay random per sample), the files are not read again, and the decision is said at the start."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.datasets.audio.synthetic import write_audio_folder
from anymae.datasets.cache import MIB, DecodeCache, decoded_bytes, prepare_cache
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.points.synthetic import synthetic_shape, write_cloud
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.distributed import DistInfo
from anymae.tasks.train.steps import run_batches
from tests.tasks.train._train_script import NoisyPictures

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = DistInfo(device=torch.device("cpu"))


class _Counted:
    """decode(j) = a fresh 2×3 float64 array of j (48 bytes); item 3 is unusable; counts the calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, j: int) -> np.ndarray:
        self.calls.append(j)
        if j == 3:
            raise DataError("clip_3.wav: empty")
        return np.full((2, 3), float(j))


def test_a_filled_cache_decodes_once_and_hands_out_copies():
    decode = _Counted()
    cache = DecodeCache(decode, 5, "Counted(5)")
    assert cache(1)[0, 0] == 1.0 and decode.calls == [1] and len(cache) == 0  # off: decoded, not kept
    assert cache.fill() == 1 and len(cache) == 4 and cache.nbytes() == 4 * 48  # item 3 left to the reader
    first = cache(2)
    first += 100  # an augmentation working in place
    assert cache(2)[0, 0] == 2.0 and decode.calls == [1, 0, 1, 2, 3, 4]  # no decoding after the fill
    with pytest.raises(DataError, match="clip_3.wav: empty"):
        cache(3)  # decoded (and refused) again, as without a cache
    cache.clear()
    assert len(cache) == 0 and cache(0)[0, 0] == 0.0 and decode.calls[-1] == 0


def test_decoded_bytes_counts_arrays_tensors_and_pictures():
    from PIL import Image

    value = (np.zeros((4, 5), np.float32), torch.zeros(3, 2, dtype=torch.float64), Image.new("RGB", (7, 2)), "name")
    assert decoded_bytes(value[:3]) == 80 + 48 + 42


def test_auto_caches_below_the_limit_and_says_why(tmp_path):
    root = write_image_folder(tmp_path / "images", 6, 2, size=16)
    data = SeededSamples(build_dataset({"source": "image_folder", "root": str(root), "img_size": 16},
                                       split="pretrain"), 0)  # fmt: skip
    cache = data.decode_cache
    assert cache is not None and cache.what == f"ImageFiles({root})"
    line = prepare_cache(data, "auto", limit_mb=12 * 16 * 16 * 3 / MIB - 1e-9)  # one byte below 12 pictures
    assert line == (f"cache: off for ImageFiles({root}): about 0 MiB decoded (12 items, estimated from 8) is more "
                    f"than run.cache_mb={12 * 16 * 16 * 3 / MIB - 1e-9:g}")
    assert len(cache) == 0 and not cache.enabled
    line = prepare_cache(data, "auto", limit_mb=12 * 16 * 16 * 3 / MIB)
    assert line.startswith(f"cache: on for ImageFiles({root}) (run.cache=auto): 12 items decoded in memory, 0.0 MiB,")
    assert line.endswith("; augmentations stay random per sample") and cache.nbytes() == 12 * 16 * 16 * 3
    assert prepare_cache(data, False, 0) == "cache: off (run.cache=false)" and len(cache) == 0


def test_cache_true_is_refused_for_data_without_a_decoded_file_cache():
    data = SeededSamples(NoisyPictures(8), 0)
    with pytest.raises(ValueError, match=r"^run.cache=true: SeededSamples has no decoded-file cache \(its decoding "
                                         r"is random, e.g. video clips, or its data is in memory already\); expected "
                                         r"run.cache=auto or false$"):  # fmt: skip
        prepare_cache(data, True, 512)
    assert prepare_cache(data, "auto", 512).startswith("cache: none (")


def _write_clouds(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, kind in enumerate(["sphere", "cube", "torus", "sphere", "cube", "torus"]):
        write_cloud(root / f"{kind}_{i}.ply", synthetic_shape(kind, 300, rng))
    return root


def _write_videos(root: Path) -> Path:
    """Three mp4 files of 12 frames at 32² and one folder of 10 JPEG frames."""
    from PIL import Image

    from anymae.datasets.video.synthetic import moving_square, write_video

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(3):
        write_video(root / f"clip_{i}.mp4", moving_square(12, 32, i, rng))
    (root / "frames").mkdir()
    for t, frame in enumerate(moving_square(10, 32, 3, rng)):
        Image.fromarray(frame).save(root / "frames" / f"img_{t + 1:05d}.jpg")
    return root


SOURCES = {  # a data section of each reader with a decoded-file cache, on files written here; batch size
    "image": (lambda tmp: {"source": "image_folder", "root": str(write_image_folder(tmp / "im", 6, 2, size=24)),
                           "img_size": 16}, {}, 4),
    "audio": (lambda tmp: {"source": "audio_folder", "root": str(write_audio_folder(tmp / "au", 2, sr=8000)),
                           "roll_mag_aug": True},
              {"sample_rate": 8000, "num_mel_bins": 32, "target_length": 48}, 2),
    "points": (lambda tmp: {"source": "point_files", "root": str(_write_clouds(tmp / "pt"))},
               {"num_points": 128, "group_size": 8}, 2),
    "video": (lambda tmp: {"source": "video_files", "root": str(_write_videos(tmp / "vi")), "sampling_rate": 1,
                           "num_sample": 2}, {"num_frames": 4, "img_size": 16}, 2),  # fmt: skip
}


@pytest.mark.parametrize("modality", sorted(SOURCES))
def test_cached_and_uncached_runs_read_identical_batches(tmp_path, modality):
    make, model_config, batch = SOURCES[modality]
    section = make(tmp_path)
    optim = OptimConfig(epochs=3, warmup_epochs=0, batch_size=batch)
    run = RunConfig(out_dir="unused", seed=5, num_workers=2 if modality == "image" else 0)

    def batches(cached: bool) -> list[tuple]:
        data = SeededSamples(build_dataset(section, split="pretrain", model_config=model_config), 5)
        steps = len(data) // batch * 3
        if cached:
            assert prepare_cache(data, True, 0).startswith("cache: on for ")
            shutil.rmtree(section["root"] + "_gone", ignore_errors=True)
            Path(section["root"]).rename(section["root"] + "_gone")  # the files are not read again
        try:
            return list(run_batches(data, optim, run, CPU, 0, steps))
        finally:
            if cached:
                Path(section["root"] + "_gone").rename(section["root"])

    plain, cached = batches(False), batches(True)
    assert len(plain) == len(cached) > 3
    for a, b in zip(plain, cached, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[-1], b[-1])  # inputs and their seeds


def test_pretraining_says_the_cache_and_gives_the_same_losses(tmp_path, capsys):
    from anymae.tasks.train.logging import read_metrics
    from anymae.tasks.train.pretrain import load_pretrain_config, run_pretrain

    root = write_image_folder(tmp_path / "images", 4, 2, size=16)
    losses = {}
    for cache in ("auto", "false"):
        cfg = load_pretrain_config(None, [
            "model.name=mae_vit_tiny_patch4", "model.img_size=16", "model.depth=1", "model.decoder_depth=1",
            "data.source=image_folder", f"data.root={root}", "data.img_size=16", "optim.batch_size=4",
            "optim.epochs=2", "optim.warmup_epochs=0", f"run.out_dir={tmp_path / cache}", "run.num_workers=0",
            "run.tensorboard=false", "run.device=cpu", "run.log_every=1", f"run.cache={cache}"])  # fmt: skip
        run_pretrain(cfg)
        losses[cache] = [r["loss"] for r in read_metrics(tmp_path / cache / "metrics.csv")]
        err = capsys.readouterr().err
        said = "cache: on for ImageFiles(" if cache == "auto" else "cache: off (run.cache=false)"
        assert said in err
    assert len(losses["auto"]) == 4 and losses["auto"] == losses["false"]


def test_a_video_is_sized_from_its_header_and_decoded_whole_only_when_cached(tmp_path):
    root = _write_videos(tmp_path / "vi")
    section = {"source": "video_files", "root": str(root), "sampling_rate": 1}
    data = SeededSamples(build_dataset(section, split="pretrain", model_config={"num_frames": 4, "img_size": 16}), 0)
    cache = data.decode_cache
    decoded: list[int] = []
    decode = cache.decode
    cache.decode = lambda j: decoded.append(j) or decode(j)
    whole = (3 * 12 + 10) * 32 * 32 * 3  # every frame of the four videos, 32² RGB
    line = prepare_cache(data, "auto", limit_mb=whole / MIB - 1e-9)
    assert line == (f"cache: off for VideoClips(4 videos): about 0 MiB decoded (4 items, estimated from 4) is more "
                    f"than run.cache_mb={whole / MIB - 1e-9:g}")
    assert decoded == [] and len(cache) == 0  # sized from frame counts and first frames: nothing decoded
    assert prepare_cache(data, "auto", limit_mb=whole / MIB).startswith("cache: on for VideoClips(4 videos)")
    assert sorted(decoded) == [0, 1, 2, 3] and cache.nbytes() == whole
    held = {j: cache(j, copy=False).clone() for j in range(4)}
    data.set_epoch(1)
    for j in range(4):
        data[j]
        assert torch.equal(cache(j, copy=False), held[j])  # clips are sampled from the held frames, never changed
    assert sorted(decoded) == [0, 1, 2, 3]
