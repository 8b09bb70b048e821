"""Point-cloud datasets: a folder of files, ModelNet40 resampled, ShapeNet-55, ScanObjectNN.

Items are `(num_points×3 float tensor, label)`: each sample is read (`points.readers`), then
validated and transformed by a `CloudPipeline` (`points.transforms`). Bad input raises
`DataError` naming the file; with `on_error="skip"` the next usable sample is returned instead and
counted across DataLoader workers (`skipped`, `skip_report`), as `ImageFiles` does.

Large clouds are subsampled at their first read to `max_points = max(8 × num_points, 16384)`
points (a fixed random subset, logged with the count) and the subset is kept by the reader (each
worker's own copy, whether or not `run.cache` keeps every file), so a 10M-point file is parsed
once, not at every draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.datasets.points.readers import ALL_EXTENSIONS, read_cloud
from anymae.datasets.points.transforms import CloudPipeline, check_cloud, resample
from anymae.datasets.scan import display_name, extension_filter, walk_files
from anymae.datasets.skips import CountsSkips, COMPRESSED_EXPANSION, DataError, Skips, check_declared_size, reason


SUBSAMPLE_FLOOR = 16384  # clouds are cut to max(8 × num_points, this) points at their first read


class PointCloudDataset(CountsSkips, Dataset, SampleDataset):
    """Base of the point datasets: items `(num_points×3 float tensor, label)`, errors or counted skips.

    Subclasses implement `_load(j) -> (N×3 array, source name)`, deterministic (what `run.cache`
    keeps, see `datasets.cache`), and fill `labels`, `names`.
    """

    labels: list[int]
    names: list[str]

    def __init__(self, pipeline: CloudPipeline, on_error: Literal["raise", "skip"], what: str) -> None:
        self.pipeline, self.on_error = pipeline, on_error
        self.max_points = max(8 * pipeline.num_points, SUBSAMPLE_FLOOR)
        self._large: dict[int, np.ndarray] = {}  # clouds subsampled at their first read (this worker's)
        self._skips = Skips(len(self.labels), "point cloud", what, on_error, problem="unusable")
        self.decode_cache = DecodeCache(self._load, len(self.labels), what)  # `_load` is deterministic

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def _read(self, j: int, path: Path, **options: int) -> tuple[np.ndarray, str]:
        """Sample j's file -> (N×3 points, its display name); a cloud over `max_points` is
        subsampled once (deterministically) and the subset kept."""
        if j not in self._large:
            points, n = read_cloud(path, max_points=self.max_points, **options)
            if n <= self.max_points:
                return points, display_name(path)
            self._large[j] = points
        return self._large[j].copy(), display_name(path)

    def __len__(self) -> int:
        return len(self.labels)

    def _item(self, j: int) -> tuple[Tensor, int]:
        points, source = self.decode_cache(j)
        return self.pipeline(points, source), self.labels[j]

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return self.names[index]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._skips.get(index, self._item)


class PointFiles(PointCloudDataset):
    """Point-cloud / mesh files in a folder: class sub-folders, or a flat unlabeled folder.

    Layouts as `ImageFiles` ("auto", "classes", "flat"); a single file is a flat set of one.
    ModelNet40's mesh layout `class/train/*.off`, `class/test/*.off` is recognized: when every
    file lies in a `train` or `test` folder, the split selects them (pretrain uses train).

    Args:
        root: folder or file.
        split: "pretrain", "train" or "test".
        pipeline: validation and transforms.
        layout: "auto", "classes" or "flat".
        on_error: "raise" or "skip" (counted).
        mesh_points: points sampled on each mesh surface before resampling.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        pipeline: CloudPipeline,
        *,
        layout: Literal["auto", "classes", "flat"] = "auto",
        on_error: Literal["raise", "skip"] = "raise",
        mesh_points: int = 8192,
    ) -> None:
        self.root = Path(root)
        self.mesh_points = mesh_points
        if not self.root.exists():
            raise ValueError(f"point-cloud root {display_name(self.root)} does not exist")
        if self.root.is_file():
            files = [self.root]
        else:
            files = walk_files(self.root, extension_filter(ALL_EXTENSIONS)).files
        if not files:
            raise ValueError(f"no point-cloud files under {display_name(self.root)} (searched recursively for "
                             f"{', '.join(ALL_EXTENSIONS)}; hidden files are ignored)")
        base = self.root if self.root.is_dir() else self.root.parent
        rel = [f.relative_to(base).parts for f in files]
        if self.root.is_dir() and all(len(p) >= 3 and p[-2] in ("train", "test") for p in rel):
            want = "test" if split == "test" else "train"
            keep = [i for i, p in enumerate(rel) if p[-2] == want]
            files, rel = [files[i] for i in keep], [rel[i] for i in keep]
            if not files:
                raise ValueError(f"no files in '{want}' folders under {display_name(self.root)}")
        if layout == "auto":
            layout = "classes" if all(len(p) > 1 for p in rel) and len({p[0] for p in rel}) >= 2 else "flat"
        if layout == "classes":
            if any(len(p) == 1 for p in rel):
                raise ValueError(f"layout='classes' expects every file of {display_name(self.root)} inside a class "
                                 "sub-folder")
            self.classes = sorted({p[0] for p in rel})
        else:
            self.classes = []
        index = {c: i for i, c in enumerate(self.classes)}
        self.files = files
        self.labels = [index[p[0]] if self.classes else -1 for p in rel]
        self.names = [display_name("/".join(p)) for p in rel]
        super().__init__(pipeline, on_error, f"PointFiles({display_name(self.root)})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        return self._read(j, self.files[j], mesh_points=self.mesh_points)


class ModelNetResampled(PointCloudDataset):
    """ModelNet40 `modelnet40_normal_resampled`: `<class>/<class>_0001.txt` rows x,y,z,nx,ny,nz.

    Lists `modelnet40_shape_names.txt` and `modelnet40_{train,test}.txt` (ModelNet10: the
    `modelnet10_*` files with `num_category=10`). As the reference: FPS to `num_points` (the
    reference caches this; here each worker keeps the resampled clouds in memory), then unit
    sphere normalization; training shuffles the point order.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, num_category: int = 40,
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        self.root = Path(root)
        tag = f"modelnet{num_category}"
        names_file = self.root / f"{tag}_shape_names.txt"
        list_file = self.root / f"{tag}_{'test' if split == 'test' else 'train'}.txt"
        for f in (names_file, list_file):
            if not f.is_file():
                raise ValueError(f"ModelNet layout: missing {display_name(f)} (expected {tag}_shape_names.txt and "
                                 f"{tag}_train.txt / {tag}_test.txt under {display_name(self.root)})")
        self.classes = [ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()]
        index = {c: i for i, c in enumerate(self.classes)}
        ids = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        self.files, self.labels, self.names = [], [], []
        for shape_id in ids:
            cls = "_".join(shape_id.split("_")[:-1])
            if cls not in index:
                raise ValueError(f"{display_name(list_file)}: shape {shape_id!r} has class {cls!r}, not in "
                                 f"{display_name(names_file)}")
            self.files.append(self.root / cls / f"{shape_id}.txt")
            self.labels.append(index[cls])
            self.names.append(shape_id)
        self._cache: dict[int, np.ndarray] = {}
        super().__init__(pipeline, on_error, f"ModelNetResampled({display_name(self.root)}, {split})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        if j not in self._cache:
            pts = check_cloud(self._read(j, self.files[j])[0], display_name(self.files[j]),
                              min_points=self.pipeline.min_points)
            self._cache[j] = resample(pts, self.pipeline.num_points, "fps") if len(pts) > self.pipeline.num_points \
                else pts
        return self._cache[j], display_name(self.files[j])


class ShapeNet55(PointCloudDataset):
    """ShapeNet-55 numpy layout: `train.txt` / `test.txt` list `<taxonomy>-<model>.npy` files of `pc_dir`.

    Label = index of the taxonomy id among the sorted ids of both lists. As the reference: a
    random subset of `num_points` (of the 8192), then unit-sphere normalization.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, pc_dir: str | None = None,
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        self.root = Path(root)
        lists = {s: self.root / f"{s}.txt" for s in ("train", "test")}
        if not lists["train"].is_file() and not lists["test"].is_file():
            raise ValueError(f"ShapeNet-55 layout: no train.txt / test.txt under {display_name(self.root)}")
        candidates = [self.root / pc_dir] if pc_dir else [self.root / "shapenet_pc", self.root.parent / "shapenet_pc"]
        self.pc_dir = next((c for c in candidates if c.is_dir()), candidates[0])
        if not self.pc_dir.is_dir():
            raise ValueError(f"ShapeNet-55 layout: no point folder, tried {', '.join(map(str, candidates))}")
        entries = {s: [ln.strip() for ln in f.read_text().splitlines() if ln.strip()] if f.is_file() else []
                   for s, f in lists.items()}
        taxonomies = sorted({e.split("-")[0] for v in entries.values() for e in v})
        index = {t: i for i, t in enumerate(taxonomies)}
        self.names = entries["test" if split == "test" else "train"]
        self.labels = [index[e.split("-")[0]] for e in self.names]
        super().__init__(pipeline, on_error, f"ShapeNet55({display_name(self.root)}, {split})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        return self._read(j, self.pc_dir / self.names[j])


SCANOBJECTNN_FILES: dict[str, tuple[str, str]] = {
    "obj_bg": ("training_objectdataset.h5", "test_objectdataset.h5"),  # main_split/
    "obj_only": ("training_objectdataset.h5", "test_objectdataset.h5"),  # main_split_nobg/
    "hardest": ("training_objectdataset_augmentedrot_scale75.h5", "test_objectdataset_augmentedrot_scale75.h5"),
}


class ScanObjectNN(PointCloudDataset):
    """ScanObjectNN h5 files (`data` B×2048×3, `label`), as Point-MAE reads them.

    `root` is the folder of the variant's h5 files (main_split for obj_bg and hardest,
    main_split_nobg for obj_only). No normalization (the reference feeds the raw clouds);
    training shuffles the point order.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, variant: str = "obj_bg",
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        from anymae.extras import require

        h5py = require("h5py", "points", purpose="reading ScanObjectNN")
        if variant not in SCANOBJECTNN_FILES:
            raise ValueError(f"ScanObjectNN variant={variant!r}: expected one of {sorted(SCANOBJECTNN_FILES)}")
        self.path = Path(root) / SCANOBJECTNN_FILES[variant][1 if split == "test" else 0]
        if not self.path.is_file():
            raise ValueError(f"ScanObjectNN: missing {display_name(self.path)}")
        try:
            with h5py.File(self.path, "r") as h5:
                for key in ("data", "label"):  # declared shapes against the bytes stored for them
                    d = h5[key]
                    check_declared_size(self.path, d.size * d.dtype.itemsize, what=f"{key!r} of shape {d.shape}",
                                        stored=d.id.get_storage_size(),
                                        expansion=1.0 if d.compression is None else COMPRESSED_EXPANSION)
                self.points = np.asarray(h5["data"], dtype=np.float32)
                self.labels = [int(v) for v in np.asarray(h5["label"]).reshape(-1)]
        except (OSError, KeyError, TypeError) as err:
            raise DataError(f"cannot read ScanObjectNN file {display_name(self.path)}: {reason(err)} "
                            "(expected datasets 'data' and 'label')") from err
        if self.points.ndim != 3 or self.points.shape[-1] < 3 or len(self.points) != len(self.labels):
            raise DataError(f"{display_name(self.path)}: expected data B×N×3 and B labels, got {self.points.shape} "
                            f"and {len(self.labels)} labels")
        self.names = [f"{self.path.name}[{i}]" for i in range(len(self.labels))]
        super().__init__(pipeline, on_error, f"ScanObjectNN({display_name(self.path)})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        return self.points[j, :, :3], self.names[j]
