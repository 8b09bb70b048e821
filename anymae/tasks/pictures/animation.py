"""Animated reconstructions of clips: one GIF frame per video frame, input | masked | reconstruction.

Generic over clip modalities whose `to_pictures` renders a clip as its frames side by side (the
video tokenizer): each panel strip is cut back into frames of the input's width, and GIF frame t
shows, for every sample (row), frame t of each panel (column). Written atomically with PIL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from anymae.core.io import atomic_write
from anymae.core.model import MaskedAutoencoder
from anymae.tasks.pictures.figures import panels_from_output, run_for_pictures

_GAP = 2  # pixels of white between panels and rows


def animation_frames(panels: Mapping[str, np.ndarray], frame_width: int, max_rows: int = 8) -> list[np.ndarray]:
    """{panel: B×H×(T·W)×3 strips} -> T pictures, each rows = samples, columns = panels.

    Args:
        panels: picture strips as `tasks.pictures.panels_from_output` returns them.
        frame_width: W, the width of one frame in the strips.
        max_rows: at most this many samples.

    Returns:
        T uint8 arrays of shape (R·H + (R-1)·gap)×(P·W + (P-1)·gap)×3.
    """
    strips = list(panels.values())
    b, h, total, _ = strips[0].shape
    if total % frame_width:
        raise ValueError(f"picture strips are {total} px wide, not a multiple of the frame width {frame_width}")
    t, rows, cols = total // frame_width, min(b, max_rows), len(strips)
    canvas_h, canvas_w = rows * h + (rows - 1) * _GAP, cols * frame_width + (cols - 1) * _GAP
    frames = []
    for k in range(t):
        canvas = np.full((canvas_h, canvas_w, 3), 255, dtype=np.uint8)
        for c, strip in enumerate(strips):
            for r in range(rows):
                y, x = r * (h + _GAP), c * (frame_width + _GAP)
                canvas[y : y + h, x : x + frame_width] = strip[r, :, k * frame_width : (k + 1) * frame_width]
        frames.append(canvas)
    return frames


def save_reconstruction_gif(
    path: str | os.PathLike[str],
    model: MaskedAutoencoder,
    batch: Tensor,
    *,
    seeds: Tensor | None = None,
    noise: Tensor | None = None,
    max_rows: int = 8,
    fps: float = 4.0,
    render: Mapping[str, Any] | None = None,
) -> Path:
    """Write an animated GIF of input | masked | reconstruction for a batch of B×C×T×H×W clips.

    Args:
        path: the GIF file (folders are created).
        model: a MaskedAutoencoder whose tokenizer renders clips as frame strips.
        batch: B×C×T×H×W clips on the model's device.
        seeds, noise: the masks, as in `tasks.pictures.reconstruction_panels`.
        max_rows: at most this many samples.
        fps: frames per second of the animation.
        render: the tokenizer's rendering options.

    Returns:
        The written path.
    """
    if not isinstance(batch, Tensor) or batch.ndim != 5:
        raise ValueError(f"a reconstruction GIF needs clips B×C×T×H×W, got {getattr(batch, 'shape', type(batch))}")
    out = run_for_pictures(model, batch, seeds=seeds, noise=noise)
    panels = panels_from_output(model, batch, out, render=render)
    frames = [Image.fromarray(f) for f in animation_frames(panels, batch.shape[-1], max_rows)]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return target
