"""The training stream through real DataLoaders: ranks × workers, resume, the seeded shuffle buffer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.datasets.shards.dataset import ShardDataset
from anymae.datasets.shards.writer import write_shards
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.distributed import DistInfo
from anymae.tasks.train.loader.stream import StreamBatches, stream_batches
from tests.datasets.shards.conftest import same

SEED = 11
N = 24


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images in 5 uneven shards (5, 5, 5, 5, 4)."""
    root = tmp_path_factory.mktemp("stream")
    images = write_image_folder(root / "images", 8, 3, size=12, fmt="png")
    write_shards({"source": "image_folder", "root": str(images), "img_size": 8}, root / "shards", max_count=5,
                 progress=False)  # fmt: skip
    return root / "shards"


def _data(shards: Path, buffer: int = 6) -> SeededSamples:
    return SeededSamples(ShardDataset(str(shards), split="pretrain", augment="pretrain", shuffle_buffer=buffer), SEED)


def _batches(data: SeededSamples, *, batch: int, workers: int, start: int, stop: int, rank: int = 0,
             world: int = 1) -> list[tuple[Any, ...]]:
    run = RunConfig(out_dir="unused", seed=SEED, num_workers=workers)
    return list(stream_batches(data, OptimConfig(batch_size=batch), run, DistInfo(rank=rank, world_size=world),
                               start, stop))  # fmt: skip


def _origin(seed: int) -> tuple[int, int]:
    """(epoch, index) of a per-sample seed."""
    return next((e, i) for e in range(4) for i in range(N) if sample_seed(SEED, e, i) == seed)


def test_two_ranks_with_two_loader_workers_each_see_every_sample_once_per_epoch(shards: Path) -> None:
    data = _data(shards)
    seen: Counter[tuple[int, int]] = Counter()
    for rank in (0, 1):  # batch 2 × 2 ranks: 6 steps per epoch; 12 steps = 2 epochs
        batches = _batches(data, batch=2, workers=2, start=0, stop=12, rank=rank, world=2)
        assert len(batches) == 12 and all(b[0].shape == (2, 3, 8, 8) for b in batches)
        seen.update(_origin(int(s)) for b in batches for s in b[2])
    assert seen == Counter({(e, i): 1 for e in (0, 1) for i in range(N)})


def test_a_resumed_stream_continues_bitwise_across_an_epoch_boundary(shards: Path) -> None:
    data = _data(shards)
    full = _batches(data, batch=4, workers=2, start=0, stop=9)  # 6 steps per epoch
    resumed = _batches(data, batch=4, workers=2, start=4, stop=9)
    assert len(full) == 9 and len(resumed) == 5
    assert all(same(a, b) for a, b in zip(full[4:], resumed))
    stopped = _batches(data, batch=4, workers=2, start=0, stop=3)  # a run stopped early (max_steps)
    assert all(same(a, b) for a, b in zip(full[:3], stopped))


def test_the_stream_does_not_depend_on_the_process_that_reads_it(shards: Path) -> None:
    data = _data(shards)
    in_process = list(StreamBatches(data, batch_size=4, accum_iter=1, world_size=1, rank=0, seed=SEED, workers=1,
                                    start=0, stop=6))  # fmt: skip
    assert all(same(a, b) for a, b in zip(in_process, _batches(data, batch=4, workers=1, start=0, stop=6)))


def test_the_shuffle_buffer_is_seeded_per_epoch_and_one_means_file_order(shards: Path) -> None:
    def order(buffer: int, epoch: int) -> list[int]:
        batches = _batches(_data(shards, buffer), batch=4, workers=0, start=6 * epoch, stop=6 * epoch + 6)
        return [_origin(int(s))[1] for b in batches for s in b[2]]

    plain = order(1, 0)  # no shuffling: the shards in the epoch's order, each in tar order
    jumps = sum(1 for a, b in zip(plain, plain[1:]) if b != a + 1)
    assert sorted(plain) == list(range(N)) and 1 <= jumps <= 4  # 5 shards, each in tar order
    assert order(8, 0) == order(8, 0) != plain  # seeded
    assert order(8, 1) != order(8, 0)  # a new order every epoch


def test_the_raw_samples_in_flight_stay_within_the_shuffle_buffer(shards: Path) -> None:
    dataset = ShardDataset(str(shards), split="pretrain", augment="pretrain", shuffle_buffer=5)
    data, pulled = SeededSamples(dataset, SEED), [0]
    read = dataset.read

    def counted(*args: Any) -> Iterator[Any]:
        for raw in read(*args):
            pulled[0] += 1
            yield raw

    dataset.read = counted  # type: ignore[method-assign]
    stream = StreamBatches(data, batch_size=2, accum_iter=1, world_size=1, rank=0, seed=SEED, workers=1,
                           start=0, stop=12)  # fmt: skip
    for yielded, _ in enumerate(stream, start=1):
        assert pulled[0] - 2 * yielded <= 5 + 1  # buffered + the one being added
    assert pulled[0] == N


def test_a_subset_is_read_by_index_not_streamed(shards: Path) -> None:
    from anymae.datasets.contract import SubsetView

    data = _data(shards)
    assert data.stream is not None and SubsetView(data, [3, 1]).stream is None
    assert torch.equal(SubsetView(data, [3, 1])[0][0], data[3][0])


def test_the_scratch_folder_outlives_loader_workers_and_goes_with_the_dataset(shards: Path) -> None:
    import gc

    dataset = ShardDataset(str(shards), split="pretrain", augment="pretrain")
    scratch = dataset.decoder.scratch
    assert len(_batches(SeededSamples(dataset, SEED), batch=4, workers=2, start=0, stop=6)) == 6
    assert scratch.is_dir() and not any(scratch.iterdir())  # forked workers exited without removing it
    del dataset
    gc.collect()
    assert not scratch.exists()


def test_shards_named_by_urls_stream_through_webdataset_pipes(shards: Path) -> None:
    from anymae.datasets.shards.manifest import ShardError

    urls = f"pipe:cat {shards}/train-{{000000..000004}}.tar"
    with pytest.raises(ShardError, match="give data.manifest"):
        ShardDataset(urls)
    piped = SeededSamples(ShardDataset(urls, manifest=str(shards / "manifest.json"), augment="pretrain",
                                       shuffle_buffer=6), SEED)  # fmt: skip
    local = _data(shards)
    assert all(same(a, b) for a, b in zip(_batches(piped, batch=4, workers=0, start=0, stop=6),
                                          _batches(local, batch=4, workers=0, start=0, stop=6)))  # fmt: skip
    with pytest.raises(ShardError, match="random access needs a local shard"):
        piped[3]


def test_the_default_shuffle_buffer_holds_about_256_mib_of_samples(shards: Path) -> None:
    import dataclasses

    from anymae.datasets.shards.dataset import default_buffer

    dataset = ShardDataset(str(shards))
    assert dataset.shuffle_buffer == 1000  # kilobyte pictures: webdataset's usual 1000

    def mean_size(size: int) -> int:
        sized = [dataclasses.replace(s, bytes=s.count * size) for s in dataset.manifest.shards]
        return default_buffer(dataclasses.replace(dataset.manifest, shards=sized))

    assert mean_size(2**20) == 256 and mean_size(64 * 2**20) == 16  # 1 MiB clips; 64 MiB videos: the floor
