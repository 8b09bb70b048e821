"""One folder scan for every modality: links inside the root only, each real directory once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anymae.datasets.scan import display_name, extension_filter, scan_folder, walk_files
from tests.fuzz.bad_inputs import make_dangling_link, make_dir_self_links, make_escape_link, non_utf8_path

ACCEPT = extension_filter((".png",))


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


@pytest.mark.timeout(20)
def test_self_and_parent_links_end_and_stay_inside(tmp_path):
    root = tmp_path / "data"
    _touch(root / "a" / "1.png", root / "b" / "2.png", tmp_path / "outside" / "3.png")
    make_dir_self_links(root)  # root/self -> root, root/up -> tmp_path (outside)
    found = walk_files(root, ACCEPT)
    assert [f.relative_to(root).as_posix() for f in found.files] == ["a/1.png", "b/2.png"]
    assert {p.name for p in found.skipped_links} == {"self", "up"}


def test_link_to_a_folder_inside_is_read_once_and_outside_only_when_asked(tmp_path):
    root = tmp_path / "data"
    _touch(root / "a" / "1.png", tmp_path / "outside" / "3.png")
    (root / "alias").symlink_to(root / "a", target_is_directory=True)  # same real folder twice
    make_escape_link(root, tmp_path / "outside")
    inside = walk_files(root, ACCEPT).files
    assert len(inside) == 1  # a/1.png or alias/1.png, not both
    anywhere = walk_files(root, ACCEPT, follow_links="any").files
    assert sorted(p.name for p in anywhere) == ["1.png", "3.png"]
    assert walk_files(root, ACCEPT, follow_links="none").files == [root / "a" / "1.png"]


def test_dangling_links_are_listed_so_reading_them_names_them(tmp_path):
    root = tmp_path / "data"
    _touch(root / "1.png")
    link = make_dangling_link(root, "2.png")
    assert walk_files(root, ACCEPT).files == [root / "1.png", link]


def test_non_utf8_names_are_kept_and_shown(tmp_path):
    path = non_utf8_path(tmp_path, ".png")
    path.write_bytes(b"x")
    assert walk_files(tmp_path, ACCEPT).files == [path]
    assert display_name(path).endswith("clip_\\xff\\xfe.png")
    assert os.path.exists(path)


def test_classes_layout_counts_and_empty_class_folders(tmp_path):
    _touch(tmp_path / "cat" / "1.png", tmp_path / "cat" / "2.png", tmp_path / "dog" / "3.png")
    classes, samples = scan_folder(tmp_path, "auto", (".png",), what="image")
    assert classes == ["cat", "dog"] and [label for _, label in samples] == [0, 0, 1]
    (tmp_path / "eel").mkdir()
    with pytest.raises(ValueError, match="eel.*hold no image files"):
        scan_folder(tmp_path, "classes", (".png",), what="image")


def test_missing_root_and_link_loop_root_say_which(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        scan_folder(tmp_path / "nope", "auto", (".png",), what="image")
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    with pytest.raises(ValueError, match="dangling or looping link"):
        scan_folder(loop, "auto", (".png",), what="image")
