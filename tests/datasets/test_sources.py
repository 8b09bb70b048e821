from __future__ import annotations

import pytest

from anymae.core.config import ConfigError
from anymae.datasets.sources import SOURCES, build_dataset, files_section, source_entry

MODALITIES = {"image", "video", "audio", "points", "graph", "multichannel", "volume", "features", "audio-visual",
              "multi-image"}


def test_every_modality_registers_sources_and_exactly_one_file_reader_with_a_root_field() -> None:
    entries = SOURCES.entries()
    assert {e.modality for e in entries} == MODALITIES | {"any"}
    assert [e.name for e in entries if e.modality == "any"] == ["mixed", "shards"]  # several sources; tar shards
    readers = [e for e in entries if e.meta.get("files") is not None]
    assert sorted(e.modality for e in readers) == sorted(MODALITIES)  # one file reader per modality
    for entry in readers:
        fields = entry.config.__dataclass_fields__
        assert "root" in fields and set(entry.files) <= set(fields), entry.name
        assert files_section(entry.modality, "/r") == {"source": entry.name, "root": "/r", **entry.files}


def test_image_sources_live_in_their_modality_module() -> None:
    for name in ("image_folder", "demo_photos", "synthetic_images"):
        entry = source_entry(name)
        assert entry.modality == "image" and entry.obj.__module__ == "anymae.datasets.image.sources"


def test_files_section_for_images_and_unknown_modality() -> None:
    assert files_section("image", "/x") == {"source": "image_folder", "root": "/x", "layout": "flat"}
    assert files_section("graph", "/g") == {"source": "graph_folder", "root": "/g"}
    with pytest.raises(ConfigError, match="no file reader for modality 'smell'; known: audio, audio-visual, features, graph, image"):
        files_section("smell", "/x")


def test_unknown_source_and_unknown_field_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown data source 'nope'; expected one of audio_csv, audio_folder, av_csv"):
        build_dataset({"source": "nope"}, split="train")
    with pytest.raises(ConfigError, match="did you mean 'image_folder'"):
        build_dataset({"source": "image_folders"}, split="train")
    with pytest.raises(ConfigError, match="data.source=None: expected a source name"):
        build_dataset({"root": "/x"}, split="train")
    with pytest.raises(ConfigError, match="colour"):
        build_dataset({"source": "synthetic_images", "colour": 1}, split="train")


def test_a_section_builds_through_its_registered_config() -> None:
    data = build_dataset({"source": "synthetic_images", "n": 6, "img_size": 8, "num_classes": 3}, split="train")
    x, label = data[0]
    assert len(data) == 6 and tuple(x.shape) == (3, 8, 8) and 0 <= int(label) < 3
