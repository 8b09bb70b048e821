"""anymae: masked-autoencoder pretraining on any modality, one shared core."""

from __future__ import annotations

from anymae.core.model import MAEOutput, MaskedAutoencoder
from anymae.core.registry import create_model, list_models
from anymae.modalities import image as _image  # noqa: F401  (registers the image presets)
from anymae.modalities import multichannel as _multichannel  # noqa: F401
from anymae.modalities import points as _points  # noqa: F401
from anymae.modalities import audio as _audio  # noqa: F401
from anymae.modalities import video as _video  # noqa: F401
from anymae.modalities import graph as _graph  # noqa: F401

__version__ = "0.1.0"

__all__ = ["MAEOutput", "MaskedAutoencoder", "create_model", "list_models", "__version__"]
