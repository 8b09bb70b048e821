"""Optional dependencies per modality: import them on use, with a message naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the anymae extra to install."""


def require(module: str, extra: str, *, purpose: str = "") -> ModuleType:
    """Import `module`, or fail with how to install the anymae extra that provides it.

    Args:
        module: the module to import, e.g. "decord".
        extra: the anymae extra that installs it, e.g. "video".
        purpose: what it is needed for (for the message), e.g. "decoding video files".
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        why = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"anymae needs the '{module}' package{why}; install the extra: pip install 'anymae[{extra}]' "
            f"(import failed: {err})"
        ) from err
