"""Recipes of the MAE literature: presets that compose the core's mechanisms on a modality's model.

A recipe module (`anymae/recipes/<recipe>.py`) registers presets named after its paper
(`hpm_vit_base_patch16`, `hpm_vit_tiny_patch4`, ...) with `core.registry.register_model`. Its
builder builds the base model of a modality through that modality's builder (e.g.
`modalities.image.build_image_mae`) and adds the recipe's parts — a masking strategy, teachers,
target providers, loss terms, extra decoders, a masking mode — through the skeleton's constructor
arguments and `add_teacher`; it never subclasses or copies `MaskedAutoencoder`. The recipe's own
options are fields of a small dataclass next to its builder, so `model.<option>=...` works from the
command line and the resolved options are saved in checkpoints (`MaskedAutoencoder.config`).

Every module of this package is imported the first time the model registry is read (the package
registers itself with `MODELS.defer`), so a new recipe is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
