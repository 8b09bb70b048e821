"""Folder -> shards -> random access and stream: the folder dataset, sample for sample, for every modality."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webdataset as wds

from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.datasets.shards.adapters import adapter_for
from anymae.datasets.shards.writer import write_shards
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.loader.stream import StreamBatches
from tests.datasets.shards.conftest import MAKERS, FolderSet, same

SEED = 7


def _streamed(data: SeededSamples, epoch: int) -> dict[int, tuple[Any, ...]]:
    """Every sample of `epoch` read through the training stream, one per batch: index -> batch."""
    n = len(data)
    stream = StreamBatches(data, batch_size=1, accum_iter=1, world_size=1, rank=0, seed=SEED, workers=1,
                           start=epoch * n, stop=(epoch + 1) * n)  # fmt: skip
    index = {sample_seed(SEED, epoch, i): i for i in range(n)}
    return {index[int(batch[-1][0])]: batch for batch in stream}


@pytest.mark.parametrize("name", list(MAKERS))
def test_folder_to_shards_to_stream_is_the_folder_sample_for_sample(
    name: str, folder_sets: Callable[[str], FolderSet], tmp_path: Path
) -> None:
    fs = folder_sets(name)
    out = tmp_path / "shards"
    manifest = write_shards(fs.section, out, max_count=2, model_config=fs.model, progress=False)
    folder = build_dataset(fs.section, split="train", augment=False, model_config=fs.model)
    n = len(folder)
    assert manifest.num_samples == n and [s.count for s in manifest.shards] == [2] * (n // 2) + [n % 2] * (n % 2)

    # same bytes and labels, read back by webdataset itself
    adapter = adapter_for(fs.section["source"])
    pattern = str(out / f"train-{{000000..{len(manifest.shards) - 1:06d}}}.tar")
    samples = list(wds.WebDataset(pattern, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{j:09d}" for j in range(n)]
    for j, sample in enumerate(samples):
        files = adapter.files(folder, j)
        assert {k: sample[k] for k in files} == {k: p.read_bytes() for k, p in files.items()}
        meta = json.loads(sample["json"])
        assert meta == {"index": j, "file": adapter.name(folder, j), "label": adapter.label(folder, j)}

    # same tensors for the same per-sample seeds: by index and streamed, with both transforms
    for split, augment in (("pretrain", "pretrain"), ("test", False)):
        a = SeededSamples(build_dataset(fs.section, split=split, augment=augment, model_config=fs.model), SEED)
        shards = build_dataset({"source": "shards", "root": str(out)}, split=split, augment=augment,
                               model_config=fs.model)  # fmt: skip
        b = SeededSamples(shards, SEED)
        assert len(b) == n and b.labels == a.labels
        assert (b.num_views, b.inputs_per_item) == (a.num_views, a.inputs_per_item)
        for epoch in (0, 1):
            a.set_epoch(epoch)
            b.set_epoch(epoch)
            expected = [a[i] for i in range(n)]
            assert all(same(expected[i], b[i]) for i in range(n)), f"{name} {augment} epoch {epoch}"
            streamed = _streamed(b, epoch)
            assert sorted(streamed) == list(range(n))
            for i, batch in streamed.items():
                assert same(a.collate([expected[i]]), batch), f"{name} {augment} epoch {epoch} sample {i}"
