"""anymae: masked-autoencoder pretraining on any modality, one shared core.

`import anymae` is light: it imports no torch, timm or torchvision. The model presets of every
modality are registered the first time the model registry is read (`list_models`, `create_model`,
`anymae info`), and the names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anymae.core.registry import MODELS, create_model, list_models

# The modules that register the model presets, imported on the registry's first read.
MODALITY_MODULES: tuple[str, ...] = tuple(
    f"anymae.modalities.{name}" for name in ("image", "multichannel", "points", "audio", "video", "graph", "volume", "features")
)
MODELS.defer(*MODALITY_MODULES, "anymae.recipes")  # recipes compose the modalities' models

if TYPE_CHECKING:
    from anymae.core.model import MAEOutput, MaskedAutoencoder

__version__ = "0.1.0"

__all__ = ["MAEOutput", "MaskedAutoencoder", "create_model", "list_models", "__version__"]

_LAZY = {"MAEOutput": "anymae.core.model", "MaskedAutoencoder": "anymae.core.model"}


def __getattr__(name: str) -> Any:
    """`anymae.MaskedAutoencoder` / `anymae.MAEOutput`: imported (with torch) on first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anymae' has no attribute {name!r}")
