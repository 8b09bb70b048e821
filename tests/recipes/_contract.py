"""What every recipe must do, shared by the contract tests and the DDP script.

A recipe is a module `anymae/recipes/<recipe>.py` with a CPU config `configs/<recipe>_tiny_cpu.yaml`.
The contract runs that config as a user would (`anymae pretrain --config ... data.root=DIR`) on
data made here, shrunk only in the run's length and batch size (never in the model), with
`teacher.checkpoint=` a tiny anymae checkpoint for recipes whose config has a `teacher` section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


# recipes whose presets are plain image-preset options (masking / mode / loss) in modalities/image.py
IMAGE_PRESET_RECIPES = ("colormae", "simmim")


def recipes() -> list[str]:
    """Every recipe: the modules below anymae/recipes/ (private ones and packages left out) and
    `IMAGE_PRESET_RECIPES`."""
    modules = {p.stem for p in (REPO / "anymae" / "recipes").rglob("*.py") if not p.stem.startswith("_")}
    return sorted(modules | set(IMAGE_PRESET_RECIPES))


def tiny_config(recipe: str) -> Path:
    return CONFIGS / f"{recipe}_tiny_cpu.yaml"


def config_of(recipe: str) -> dict[str, Any]:
    return yaml.safe_load(tiny_config(recipe).read_text())


def _images(root: Path) -> Path:
    from anymae.datasets.image.synthetic import write_image_folder

    return write_image_folder(root / "images", 8, 2, size=40, fmt="png", seed=0)  # 16 PNGs in 2 class folders


def _volumes(root: Path) -> Path:
    from anymae.datasets.volume.synthetic import write_volume_folder

    return write_volume_folder(root / "volumes", 8, 2, size=20)  # 16 .npy / .nii.gz volumes


def _features(root: Path) -> Path:
    from anymae.datasets.features.synthetic import write_feature_folder

    return write_feature_folder(root / "features", 16, dim=64, min_len=3, max_len=40, seed=0)  # 16 .npy clips


def _pairs(root: Path) -> Path:
    from anymae.datasets.pairs.files import write_pair_folder

    return write_pair_folder(root / "pairs", 16, size=40, seed=0)  # 16 pairs <name>_1.png / <name>_2.png


def _av_clips(root: Path) -> Path:
    from anymae.datasets.audiovisual.synthetic import write_av_folder

    return write_av_folder(root, 4, 4, seconds=1.5, size=32, seed=0)  # 16 mp4 clips with sound, 4 class folders


def _paired(root: Path) -> Path:
    from anymae.datasets.audiovisual.synthetic import write_paired_folder

    # 16 rgb/ + depth/ PNG pairs, 2 classes; written at root itself (the DDP test reads data.root=<dir>/<source>)
    return write_paired_folder(root, 2, 8, size=40, seed=0)


# data.source -> a function writing a small dataset of that source under a folder, returning data.root
DATA_MAKERS: dict[str, Callable[[Path], Path]] = {
    "image_folder": _images, "volume_files": _volumes, "feature_files": _features, "image_pairs": _pairs,
    "av_folder": _av_clips, "paired_folder": _paired,
}


def make_data(recipe: str, root: Path) -> Path:
    source = config_of(recipe)["data"]["source"]
    if source not in DATA_MAKERS:
        raise AssertionError(
            f"recipe {recipe!r}: its tiny config reads data.source={source!r}, for which the contract has no "
            "data maker; add one to DATA_MAKERS in tests/recipes/_contract.py"
        )
    return DATA_MAKERS[source](root / source)


def needs_teacher(recipe: str) -> bool:
    """Whether the tiny config has a `teacher` section (a frozen teacher read from a file)."""
    return isinstance(config_of(recipe).get("teacher"), dict)


def overrides(recipe: str, data_root: Path, out_dir: Path, steps: int, teacher: Path | None) -> list[str]:
    """The command-line overrides of a contract run: only data, length, batch, workers and logging."""
    args = [
        f"data.root={data_root}", f"run.out_dir={out_dir}", f"run.max_steps={steps}", "optim.batch_size=8",
        "run.num_workers=0", "run.ckpt_every=2", "run.log_every=1", "run.tensorboard=false",
        "run.precision=fp32", "run.seed=0",
    ]
    if needs_teacher(recipe):
        assert teacher is not None, f"recipe {recipe!r} needs a teacher file"
        args.append(f"teacher.checkpoint={teacher}")
    return args
