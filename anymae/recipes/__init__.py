"""Recipes of the MAE literature: presets that compose the core's mechanisms on a modality's model.

A recipe module (`anymae/recipes/<role>/<recipe>.py`) registers presets named after its paper
(`hpm_vit_base_patch16`, `hpm_vit_tiny_patch4`, ...) with `core.registry.register_model`. Its
builder builds the base model of a modality through that modality's builder (e.g.
`modalities.image.build_image_mae`) and adds the recipe's parts — a masking strategy, teachers,
target providers, loss terms, extra decoders, a masking mode — through the skeleton's constructor
arguments and `add_teacher`; it never subclasses or copies `MaskedAutoencoder`. The recipe's own
options are fields of a small dataclass next to its builder, so `model.<option>=...` works from the
command line and the resolved options are saved in checkpoints (`MaskedAutoencoder.config`).

Sub-folders by what the recipe changes:

- `masking/`: where and how tokens are hidden (HPM, AttMask, DMJD, LUT, SelectiveMAE, ROPIM);
- `targets/`: what is predicted, from what (MaskFeat, CCViT, BEiT v2, MaskAlign, MR-MAE, DMAE, CAE,
  LV-MAE);
- `decoders/`: decoders that read more (Hi-End-MAE: encoder layers; CroCo: a second view);
- `crossmodal/`: several modalities in one model (CAV-MAE, OmniMAE, MultiMAE).

Every module below this package is imported the first time the model registry is read (the
package registers itself with `MODELS.defer`), so a new recipe is one new file; modules whose
name starts with "_" hold shared helpers and are imported by the recipes that use them.
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.walk_packages(__path__, prefix=f"{__name__}."), key=lambda m: m.name):
    if not _info.name.rsplit(".", 1)[-1].startswith("_") and not _info.ispkg:
        importlib.import_module(_info.name)
