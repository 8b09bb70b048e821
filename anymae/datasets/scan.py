"""Folder scans for every modality: each real directory once, inside the data root, any file name.

One mechanism for every reader that lists files under `data.root`:

- Directory links are followed only while their target stays inside the root (a link to `..`
  or elsewhere is skipped and counted), and every real directory is visited once, so link loops
  (`a -> .`, `a -> b -> a`) end. `follow_links="any"` follows links out of the root too (still
  once per real directory); `"none"` follows none.
- File links are listed when they resolve to a regular file; a dangling or looping link is
  listed too, so that reading it gives an error naming it (not a silent omission).
- Hidden names (a leading dot) are skipped.
- Names that are not valid UTF-8 are kept as they are (`os.fsdecode`'s surrogate escapes): the
  readers open them with the same `Path`; messages show them with `display_name`.

`scan_layout` turns a list of files into classes and labelled samples the way torchvision's
ImageFolder does (a folder per class), or a flat unlabeled list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

FollowLinks = Literal["inside", "any", "none"]
Layout = Literal["auto", "classes", "flat"]

log = logging.getLogger(__name__)


def display_name(path: Path | str) -> str:
    """`path` as printable text: undecodable bytes shown as `\\xNN` (never a UnicodeEncodeError)."""
    raw = os.fsencode(str(path))
    return raw.decode("utf-8", "backslashreplace")


@dataclass
class ScanResult:
    """Files found under a root, and what the scan passed over.

    Attributes:
        files: accepted files, sorted by their path relative to the root.
        skipped_links: directory links not followed (outside the root, or already visited).
    """

    files: list[Path] = field(default_factory=list)
    skipped_links: list[Path] = field(default_factory=list)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def walk_files(
    root: Path | str,
    accept: Callable[[str], bool],
    *,
    follow_links: FollowLinks = "inside",
    stop_dir: Callable[[Path, list[str]], bool] | None = None,
) -> ScanResult:
    """Every file under `root` whose name `accept`s, each real directory visited once.

    Args:
        root: the data root (a folder).
        accept: file name -> keep it (e.g. an extension test).
        follow_links: which directory links to follow (module doc).
        stop_dir: `(dir, file names) -> True` makes that directory itself a found item and stops
            the descent into it (video frame folders).

    Returns:
        A `ScanResult`; directory links that were not followed are logged once (a count).
    """
    root = Path(root)
    real_root = Path(os.path.realpath(root))
    seen: set[tuple[int, int]] = set()
    result = ScanResult()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError:
            result.skipped_links.append(folder)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            result.skipped_links.append(folder)
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            result.skipped_links.append(folder)
            continue
        names = [e.name for e in entries if not e.name.startswith(".")]
        if stop_dir is not None and folder != root and stop_dir(folder, names):
            result.files.append(folder)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:  # a looping link: not a directory we can enter
                is_dir = False
            if is_dir:
                if is_link and (
                    follow_links == "none"
                    or (follow_links == "inside" and not _inside(Path(os.path.realpath(path)), real_root))
                ):
                    result.skipped_links.append(path)
                    continue
                stack.append(path)
            elif accept(entry.name):
                result.files.append(path)
    result.files.sort(key=lambda p: p.relative_to(root).as_posix())
    if result.skipped_links:
        log.info(
            "scan of %s: %d directory link(s) not followed (outside the root, looping or unreadable), e.g. %s",
            display_name(root), len(result.skipped_links), display_name(result.skipped_links[0]),
        )
    return result


def extension_filter(extensions: tuple[str, ...]) -> Callable[[str], bool]:
    """A name filter for lower-case extensions such as ('.jpg', '.png')."""
    return lambda name: os.path.splitext(name)[1].lower() in extensions


def scan_layout(
    root: Path, files: list[Path], layout: Layout, *, what: str
) -> tuple[list[str], list[tuple[Path, int]]]:
    """(classes, [(file, label)]) for files found under `root`.

    "auto": classes when no file lies directly in `root` and at least two sub-folders hold files,
    else flat. "classes": the first path component under `root` is the class (sorted names ->
    0..C-1). "flat": every label is -1.

    Args:
        root: the data root.
        files: files under `root` (from `walk_files`), sorted.
        layout: "auto", "classes" or "flat".
        what: the kind of file, for messages ("image", "audio", ...).
    """
    if layout not in ("auto", "classes", "flat"):
        raise ValueError(f"layout={layout!r}: expected 'auto', 'classes' or 'flat'")
    rel = [f.relative_to(root).parts for f in files]
    at_top = [f for f, parts in zip(files, rel, strict=True) if len(parts) == 1]
    if layout == "auto":
        holders = {parts[0] for parts in rel if len(parts) > 1}
        layout = "classes" if not at_top and len(holders) >= 2 else "flat"
    if layout == "flat":
        return [], [(f, -1) for f in files]
    if at_top:
        raise ValueError(
            f"layout='classes' expects every {what} file of {display_name(root)} inside a class sub-folder, "
            f"but {len(at_top)} lie directly in it (e.g. {display_name(at_top[0].name)}); use layout='flat' "
            "or move them into class folders"
        )
    real_root = Path(os.path.realpath(root))
    folders = [
        d for d in root.iterdir()
        if not d.name.startswith(".") and d.is_dir() and (not d.is_symlink() or _inside(Path(os.path.realpath(d)), real_root))
    ]
    classes = sorted({d.name for d in folders} | {parts[0] for parts in rel})
    holding = {parts[0] for parts in rel}
    empty = [c for c in classes if c not in holding]
    if empty:
        raise ValueError(
            f"class folder(s) {', '.join(display_name(root / c) for c in empty)} hold no {what} files; "
            "remove them or add files, so that class indices stay the same across splits"
        )
    index = {c: i for i, c in enumerate(classes)}
    samples = sorted(((f, index[parts[0]]) for f, parts in zip(files, rel, strict=True)), key=lambda s: s[1])
    return classes, samples


def scan_folder(
    root: Path | str, layout: Layout, extensions: tuple[str, ...], *, what: str, follow_links: FollowLinks = "inside"
) -> tuple[list[str], list[tuple[Path, int]]]:
    """(classes, samples) for a data root: a folder (scanned, `scan_layout`) or a single file.

    Raises:
        ValueError: the root does not exist, is a file of another kind, or holds no such files.
    """
    root = Path(root)
    if not root.exists():
        kind = "a dangling or looping link" if root.is_symlink() else "does not exist"
        raise ValueError(f"{what} root {display_name(root)} {kind}")
    if root.is_file():  # a single file: a flat, unlabeled dataset of one
        if root.suffix.lower() not in extensions or layout == "classes":
            raise ValueError(
                f"{what} root {display_name(root)} is a file; expected a folder or one {what} file ({', '.join(extensions)})"
            )
        return [], [(root, -1)]
    files = walk_files(root, extension_filter(extensions), follow_links=follow_links).files
    if not files:
        raise ValueError(
            f"no {what} files under {display_name(root)} (searched recursively for extensions "
            f"{', '.join(extensions)}; hidden files and folders are ignored)"
        )
    return scan_layout(root, files, layout, what=what)
