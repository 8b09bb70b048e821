"""Point-cloud data sources (`data.source=...`); readers are imported when a dataset is built.

    data:
      source: point_files          # a folder of .ply/.pcd/.xyz/.pts/.off/.obj/.txt/.npy files
      root: /data/ModelNet40       # class/train|test/*.off is recognized
      num_points: 1024             # default: the model's num_points

`num_points` defaults to the model's `num_points` and the smallest accepted cloud to its
`group_size`. Pretraining (`augment="pretrain"`) adds Point-MAE's scale + translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES

OnError = Literal["raise", "skip"]


@dataclass
class PointFilesSource:
    """Point-cloud or mesh files: class sub-folders (ModelNet40 meshes: class/train|test/*.off) or a flat folder."""

    root: str
    layout: Literal["auto", "classes", "flat"] = "auto"
    num_points: int | None = None
    resample: Literal["fps", "random", "first"] = "fps"
    normalize: bool = True
    mesh_points: int = 8192
    on_error: OnError = "raise"


@dataclass
class ModelNetResampledSource:
    """ModelNet40/10 `modelnet40_normal_resampled` text layout (FPS to num_points, unit sphere)."""

    root: str
    num_points: int | None = None
    num_category: int = 40
    on_error: OnError = "raise"


@dataclass
class ShapeNet55Source:
    """ShapeNet-55 numpy layout: train.txt / test.txt and shapenet_pc/*.npy (random subset, unit sphere)."""

    root: str
    pc_dir: str | None = None
    num_points: int | None = None
    on_error: OnError = "raise"


@dataclass
class ScanObjectNNSource:
    """ScanObjectNN h5 files (data, label): variant obj_bg, obj_only or hardest; no normalization."""

    root: str
    variant: Literal["obj_bg", "obj_only", "hardest"] = "obj_bg"
    num_points: int | None = None
    on_error: OnError = "raise"


@dataclass
class SyntheticShapesSource:
    """Synthetic labelled shapes (sphere, cube, torus, ...) for tests and smoke runs."""

    n: int = 64
    num_points: int | None = None
    num_classes: int = 3
    seed: int = 0


def _num_points(value: int | None, model_config: dict[str, Any]) -> int:
    return int(value if value is not None else model_config.get("num_points", 1024))


def _pipeline(num_points: int | None, augment: Any, model_config: dict[str, Any], *, how: str, normalize: bool,
              shuffle: bool) -> Any:
    from anymae.datasets.points.transforms import CloudPipeline

    return CloudPipeline(
        _num_points(num_points, model_config), how=how, normalize=normalize,  # type: ignore[arg-type]
        augment=augment in ("pretrain", "finetune"), shuffle=shuffle,
        min_points=int(model_config.get("group_size", 1)),
    )


@SOURCES.register("point_files", config=PointFilesSource, modality="points", files={"layout": "flat"})
def _point_files(cfg: PointFilesSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.points.files import PointFiles

    pipe = _pipeline(cfg.num_points, augment, model_config, how=cfg.resample, normalize=cfg.normalize, shuffle=False)
    return PointFiles(cfg.root, split, pipe, layout=cfg.layout, on_error=cfg.on_error, mesh_points=cfg.mesh_points)


@SOURCES.register("modelnet40_resampled", config=ModelNetResampledSource, modality="points")
def _modelnet(cfg: ModelNetResampledSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.points.files import ModelNetResampled

    pipe = _pipeline(cfg.num_points, augment, model_config, how="fps", normalize=True, shuffle=split != "test")
    return ModelNetResampled(cfg.root, split, pipe, num_category=cfg.num_category, on_error=cfg.on_error)


@SOURCES.register("shapenet55", config=ShapeNet55Source, modality="points")
def _shapenet(cfg: ShapeNet55Source, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.points.files import ShapeNet55

    pipe = _pipeline(cfg.num_points, augment, model_config, how="random", normalize=True, shuffle=False)
    return ShapeNet55(cfg.root, split, pipe, pc_dir=cfg.pc_dir, on_error=cfg.on_error)


@SOURCES.register("scanobjectnn", config=ScanObjectNNSource, modality="points")
def _scanobjectnn(cfg: ScanObjectNNSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.points.files import ScanObjectNN

    pipe = _pipeline(cfg.num_points, augment, model_config, how="fps", normalize=False, shuffle=split != "test")
    return ScanObjectNN(cfg.root, split, pipe, variant=cfg.variant, on_error=cfg.on_error)


@SOURCES.register("synthetic_shapes", config=SyntheticShapesSource, modality="points")
def _synthetic(cfg: SyntheticShapesSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.points.synthetic import SyntheticShapes

    seed = cfg.seed + (0 if split in ("train", "pretrain") else 1)
    return SyntheticShapes(cfg.n, num_points=_num_points(cfg.num_points, model_config), num_classes=cfg.num_classes,
                           seed=seed, augment=augment in ("pretrain", "finetune"))
