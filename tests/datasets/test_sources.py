from __future__ import annotations

import pytest

from anymae.core.config import ConfigError
from anymae.datasets.sources import FILE_SOURCES, SOURCES, build_dataset, files_section


def test_every_modality_file_reader_is_a_known_source_with_a_root_field() -> None:
    for modality, (name, fixed) in FILE_SOURCES.items():
        assert name in SOURCES, modality
        fields = SOURCES[name][0].__dataclass_fields__
        assert "root" in fields and set(fixed) <= set(fields), (modality, name)


def test_files_section_for_images_and_unknown_modality() -> None:
    assert files_section("image", "/x") == {"source": "image_folder", "root": "/x", "layout": "flat"}
    with pytest.raises(ConfigError, match="no file reader for modality 'smell'"):
        files_section("smell", "/x")


def test_unknown_source_and_unknown_field_are_named() -> None:
    with pytest.raises(ConfigError, match="data.source='nope': expected one of"):
        build_dataset({"source": "nope"}, split="train")
    with pytest.raises(ConfigError, match="colour"):
        build_dataset({"source": "synthetic_images", "colour": 1}, split="train")
