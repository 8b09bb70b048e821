"""What sharding needs to know about each folder source: a sample's files and label, and how to
read one sample back with the modality's own source.

One mechanism for every modality, in two halves:

- writing (`anymae shard`): the folder dataset a source builds lists its samples; `files(ds, j)`
  gives sample j's files as `{member suffix: path}` (one file: its extension, `jpg`; several: a
  part name and the extension, `img_00001.jpg` for a frame of a frame folder, `c0.png` for
  channel 0 of a channel-per-file row), `label(ds, j)` its label as the listing gives it (an int,
  -1 unlabelled, or a list of class indices for multi-label data), `name(ds, j)` what messages call it.
- reading: a shard sample is decoded AS A ONE-SAMPLE FOLDER. Its files are written to a scratch
  folder (`materialize`) and the modality's file source (`reader`) reads them with the data
  section the shards were made from: the same readers, checks, transforms and per-sample RNG
  draws as the folder dataset, so a sample decodes to the same tensors either way.

`listing` names the reader's fields that say where the files are (they come from the scratch
folder, never from the original section); the original section's other fields that the reader
has are carried over, resolved (`esc50`'s default normalization stays `esc50`'s). `refuse` names
fields that need the whole folder (audio's waveform mixup draws a partner from every file),
refused when they would act.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymae.datasets.scan import display_name

Files = dict[str, Path]


@dataclass(frozen=True)
class Adapter:
    """How one folder source is sharded and read back (module doc)."""

    reader: str
    dataset: str  # the class name the source builds (checked before sharding)
    files: Callable[[Any, int], Files]
    label: Callable[[Any, int], Any]
    name: Callable[[Any, int], str]
    materialize: Callable[[dict[str, bytes], Path, Any], dict[str, Any]]
    listing: tuple[str, ...] = ("root", "layout")
    placeholder: dict[str, Any] = field(default_factory=lambda: {"root": ""})
    refuse: dict[str, str] = field(default_factory=dict)


def suffix_of(path: Path) -> str:
    """A file's member suffix: its extension, lower case, without the dot (`jpg`)."""
    ext = path.suffix.lower().lstrip(".")
    if not ext:
        raise ValueError(f"{display_name(path)} has no extension; a shard member needs one")
    return ext


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return display_name(path)


def _one_file(members: dict[str, bytes], folder: Path, cfg: Any) -> dict[str, Any]:
    """The sample's only file, as `folder/sample.<ext>`: the reader's root."""
    if len(members) != 1:
        raise ValueError(f"expected one data member, found {sorted(members) or 'none'}")
    (suffix, data), = members.items()
    path = folder / f"sample.{suffix}"
    path.write_bytes(data)
    return {"root": str(path), "layout": "flat"}


# --- images -------------------------------------------------------------------------------------
def _image_files(ds: Any, j: int) -> Files:
    path = ds.samples[j][0]
    return {suffix_of(path): path}


IMAGE = Adapter(
    reader="image_folder", dataset="ImageFiles", files=_image_files, label=lambda ds, j: int(ds.samples[j][1]),
    name=lambda ds, j: _relative(ds.samples[j][0], ds.root), materialize=_one_file,
)


# --- video: a file, or a folder of img_XXXXX.jpg frames ---------------------------------------------
def _video_files(ds: Any, j: int) -> Files:
    from anymae.datasets.video.files import frame_files

    path = ds.items[j].path
    if path.is_dir():
        return {frame.name.lower(): frame for frame in frame_files(path)}
    return {suffix_of(path): path}


def _video_sample(members: dict[str, bytes], folder: Path, cfg: Any) -> dict[str, Any]:
    from anymae.datasets.video.files import VIDEO_EXTENSIONS

    if len(members) == 1 and f".{next(iter(members))}" in VIDEO_EXTENSIONS:
        return {**_one_file(members, folder, cfg), "prefix": None}
    frames = folder / "frames"
    frames.mkdir()
    for suffix, data in members.items():
        if not (suffix.startswith("img_") and suffix.endswith(".jpg")):
            raise ValueError(f"member {suffix!r} is neither a video file nor an img_XXXXX.jpg frame")
        (frames / suffix).write_bytes(data)
    return {"root": str(frames), "layout": "flat", "prefix": None}


VIDEO = Adapter(
    reader="video_files", dataset="VideoClips", files=_video_files, label=lambda ds, j: int(ds.items[j].label),
    name=lambda ds, j: display_name(ds.items[j].path), materialize=_video_sample, listing=("root", "prefix", "layout"),
)


# --- audio: folders, AudioSet CSVs, ESC-50 all read back as one file of audio_folder ------------------
def _audio_label(ds: Any, j: int) -> Any:
    label = ds.samples[j][1]
    return [int(k) for k in label] if isinstance(label, (list, tuple)) else int(label)


AUDIO = Adapter(
    reader="audio_folder", dataset="AudioClips", files=lambda ds, j: {suffix_of(ds.samples[j][0]): ds.samples[j][0]},
    label=_audio_label, name=lambda ds, j: _relative(ds.samples[j][0], ds.root), materialize=_one_file,
    refuse={"mixup": "waveform mixup draws its partner from the whole folder, which a stream of shards cannot; "
                     "set data.options.mixup=0 (fine-tuning's batch mixup still applies)"},
)


# --- point clouds and meshes ------------------------------------------------------------------------
POINTS = Adapter(
    reader="point_files", dataset="PointFiles", files=lambda ds, j: {suffix_of(ds.files[j]): ds.files[j]},
    label=lambda ds, j: int(ds.labels[j]), name=lambda ds, j: ds.names[j], materialize=_one_file,
)


# --- multi-channel stacks: one file per sample, or one image file per channel ------------------------
STACKS = Adapter(
    reader="multichannel_files", dataset="StackFiles",
    files=lambda ds, j: {suffix_of(ds.samples[j][0]): ds.samples[j][0]}, label=lambda ds, j: int(ds.samples[j][1]),
    name=lambda ds, j: _relative(ds.samples[j][0], ds.root), materialize=_one_file,
    listing=("root", "layout", "labels"),
)


def _channel_files(ds: Any, j: int) -> Files:
    row = ds.rows[j]
    paths = [ds._path(row[name]) for name in ds.file_channels]
    return {f"c{k}.{suffix_of(p)}": p for k, p in enumerate(paths)}


def _channel_row(members: dict[str, bytes], folder: Path, cfg: Any) -> dict[str, Any]:
    """The channel files, and a one-row CSV naming them under the channel columns."""
    parts = {s: s.split(".", 1)[0] for s in members}  # "c3.png" -> "c3"
    by_channel = {int(p[1:]): s for s, p in parts.items() if p.startswith("c") and p[1:].isdigit()}
    if sorted(by_channel) != list(range(len(cfg.channels))):
        raise ValueError(f"expected members c0..c{len(cfg.channels) - 1} for channels {cfg.channels}, "
                         f"found {sorted(members)}")
    for suffix, data in members.items():
        (folder / suffix).write_bytes(data)
    table = folder / "sample.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(cfg.channels)
        writer.writerow([by_channel[k] for k in range(len(cfg.channels))])
    return {"csv": str(table), "root": str(folder), "label_column": None}


CHANNEL_CSV = Adapter(
    reader="multichannel_csv", dataset="ChannelCSV", files=_channel_files, label=lambda ds, j: int(ds.label(j)),
    name=lambda ds, j: ds.name(j), materialize=_channel_row, listing=("csv", "root", "label_column"),
    placeholder={"csv": ""},
)


ADAPTERS: dict[str, Adapter] = {
    "image_folder": IMAGE,
    "video_files": VIDEO,
    "audio_folder": AUDIO,
    "audio_csv": AUDIO,
    "esc50": AUDIO,
    "point_files": POINTS,
    "multichannel_files": STACKS,
    "multichannel_csv": CHANNEL_CSV,
}

# Sources that cannot be sharded, and why (the error says it).
NOT_SHARDED: dict[str, str] = {
    "modelnet40_resampled": "its reader resamples and caches per list entry; shard the files with "
                            "data.source=point_files",
    "shapenet55": "shard the .npy files with data.source=point_files",
    "scanobjectnn": "its samples are rows of one h5 file already packed for sequential reading",
    "graph_folder": "a node-level dataset is one graph (nothing to stream) and graph-level sets are small enough "
                    "to read whole",
}


def adapter_for(source: str) -> Adapter:
    """The adapter of `source`, or a ValueError saying which sources shard (and why not this one)."""
    if source in ADAPTERS:
        return ADAPTERS[source]
    why = NOT_SHARDED.get(source, "it reads no files (synthetic or in-memory data)")
    raise ValueError(f"data.source={source!r} cannot be sharded: {why}. Sources that shard: {', '.join(ADAPTERS)}")
