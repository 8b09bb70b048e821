"""The data source of image pairs (`data.source: image_pairs`, CroCo).

    data:
      source: image_pairs
      root: /data/pairs          # <name>_1.png / <name>_2.png side by side (searched recursively)
      img_size: 224              # default: the model's input size; each view its own random crop

Pretraining draws CroCo's crops and asymmetric colour jitter; other splits centre-crop both views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES, Augment


@dataclass
class ImagePairsSource:
    """Image pairs `<name>_1.<ext>` / `<name>_2.<ext>` in one folder tree, read as two views."""

    root: str
    img_size: int | None = None
    same_crop: bool = False
    color_jitter: bool = True
    on_error: Literal["raise", "skip"] = "raise"


@SOURCES.register("image_pairs", config=ImagePairsSource, modality="image")
def _image_pairs(cfg: ImagePairsSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.pairs.files import ImagePairs

    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size")
    if size is None:
        raise ValueError("data.img_size: give it, or use an image model (img_size)")
    size = size if isinstance(size, int) else int(list(size)[0])
    return ImagePairs(cfg.root, size, train=augment == "pretrain", same_crop=cfg.same_crop,
                      color_jitter=cfg.color_jitter, on_error=cfg.on_error)
