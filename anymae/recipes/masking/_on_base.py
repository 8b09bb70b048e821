"""Recipes built on a registered base preset of any modality (HPM, AttMask).

A recipe's preset names a base model (`base="mae_vit_base_patch16"`, or an audio / video preset)
and its own options (a dataclass). The user's overrides are split: the recipe's fields go to the
recipe, the rest to the base's builder (which refuses unknown names with its valid list; the
error then also lists the recipe's options). Options the recipe sets itself (its masking) are
refused by name. `model.config` holds the base's resolved options (minus those) and the recipe's,
so `load_pretrained(checkpoint)` rebuilds the same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any, TypeVar

from anymae.core.build import resolve_config
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import create_model

R = TypeVar("R")


def split_options(
    name: str, recipe: R, overrides: dict[str, Any], *, fixed: tuple[str, ...] = (), why: str = ""
) -> tuple[R, dict[str, Any]]:
    """(the recipe dataclass with its overrides applied, the base model's overrides).

    Raises:
        TypeError: an option in `fixed` (the recipe sets it; `why` says how).
    """
    own = {f.name for f in fields(recipe)}  # type: ignore[arg-type]
    refused = sorted(set(overrides) & set(fixed))
    if refused:
        raise TypeError(f"model {name!r}: option(s) {refused} are set by the recipe{': ' + why if why else ''}")
    mine = {k: v for k, v in overrides.items() if k in own}
    cfg = resolve_config(recipe, mine, what=f"model {name!r}")  # type: ignore[type-var]
    return cfg, {k: v for k, v in overrides.items() if k not in own}


def build_base(name: str, recipe: Any, base: str, options: dict[str, Any]) -> MaskedAutoencoder:
    """The base preset `base` with `options`; an unknown option fails naming the recipe's options too."""
    try:
        model = create_model(base, **options)
    except TypeError as err:
        own = ", ".join(f.name for f in fields(recipe))
        raise TypeError(f"model {name!r} (on {base!r}): {err}; recipe options: {own}") from None
    if not isinstance(model, MaskedAutoencoder):
        raise TypeError(f"model {name!r}: base {base!r} is not a masked autoencoder")
    if model.num_branches != 1:
        raise ValueError(f"model {name!r}: base {base!r} has {model.num_branches} branches; the recipe needs one")
    return model


def recipe_config(name: str, base: MaskedAutoencoder, recipe: Any, *, fixed: tuple[str, ...] = ()) -> dict[str, Any]:
    """`model.config`: the base's plain options (without `fixed` and its name), the recipe's, the preset name."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}
    kept = {k: v for k, v in base.config.items() if k not in fixed and k != "name"}
    return {**kept, **plain, "name": name}


__all__ = ["build_base", "recipe_config", "split_options"]
