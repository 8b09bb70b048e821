"""What the teacher-based image recipes share (MaskAlign, MR-MAE, DMAE) and CAE's option handling.

- `split_options`: a recipe preset's overrides -> (the recipe's own dataclass, the image model's
  options); an unknown name fails listing both sets.
- `image_teacher`: a `FrozenTeacher` with the encoder of a registered image preset (its tokenizer
  and `TransformerEncoder` only; weights come from `teacher.checkpoint=PATH`, or from the
  `teachers.*` keys of a checkpoint when `load_pretrained` rebuilds the model).
- `recipe_config`: the plain values saved in `model.config` (image options + recipe options).
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any, TypeVar

from anymae.core.build import encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.skeleton.teacher import FrozenTeacher
from anymae.modalities.image import IMAGE_PRESETS, ImageMAEConfig, ImageTokenizer

R = TypeVar("R")


def split_options(name: str, recipe: R, overrides: dict[str, Any]) -> tuple[R, dict[str, Any]]:
    """(the recipe dataclass with its overrides applied, the remaining image-model overrides).

    Raises:
        TypeError: an option that is neither the recipe's nor an image model's (both lists named).
    """
    own = {f.name for f in fields(recipe)}  # type: ignore[arg-type]
    image = {f.name for f in fields(ImageMAEConfig)}
    unknown = sorted(set(overrides) - own - image)
    if unknown:
        raise TypeError(
            f"model {name!r}: unknown option(s) {unknown}; recipe options: {', '.join(sorted(own))}; "
            f"image options: {', '.join(sorted(image))}"
        )
    mine = {k: v for k, v in overrides.items() if k in own}
    resolved = resolve_config(recipe, mine, what=f"model {name!r}")  # type: ignore[type-var]
    return resolved, {k: v for k, v in overrides.items() if k in image}


def image_teacher(preset: str, img_size: Any, in_chans: int) -> FrozenTeacher:
    """A frozen teacher shaped like the encoder of image preset `preset` at the student's input size.

    Raises:
        ValueError: `preset` is not an image preset (the valid names listed).
    """
    if preset not in IMAGE_PRESETS:
        raise ValueError(f"teacher {preset!r} is not an image preset; expected one of {sorted(IMAGE_PRESETS)}")
    cfg = IMAGE_PRESETS[preset]
    tokenizer = ImageTokenizer(img_size, cfg.patch_size, in_chans, cfg.embed_dim)
    return FrozenTeacher(tokenizer, TransformerEncoder(encoder_config(cfg)))


def recipe_config(name: str, image: dict[str, Any], recipe: Any) -> dict[str, Any]:
    """`model.config`: the image model's plain options, the recipe's options, and the preset name."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}
    return {**image, **plain, "name": name}


__all__ = ["image_teacher", "recipe_config", "split_options"]
