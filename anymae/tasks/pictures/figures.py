"""Pictures people look at: reconstruction grids for any modality, and embedding scatter plots.

Generic over modalities: a model's tokenizer renders its own data (`to_pictures(batch, **render)
-> B×H×W×3 uint8`) and names the token value that renders as flat gray (`picture_fill`), see
`core.tokens.Tokenizer`. `render` carries the modality's rendering options (images: the
dataset's `mean` / `std`). Files are written with matplotlib's Agg canvas (no pyplot state),
atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from anymae.core.io import atomic_write
from anymae.core.model import MAEOutput, MaskedAutoencoder

INPUT, MASKED, RECONSTRUCTION, PREDICTION = "input", "masked", "reconstruction", "prediction"

_NORM_PIX_NOTE = "hidden tokens mapped back with the input token's own mean/variance (norm_pix)"


def _render_fn(model: MaskedAutoencoder, name: str) -> Any:
    fn = getattr(model.tokenizer, name, None)
    if fn is None:
        raise TypeError(
            f"{type(model.tokenizer).__name__} has no {name}(): its modality does not render pictures "
            f"(see core.tokens.Tokenizer)"
        )
    return fn


def run_for_pictures(
    model: MaskedAutoencoder, batch: Any, *, seeds: Tensor | None = None, noise: Tensor | None = None
) -> MAEOutput:
    """One forward pass in eval mode without gradients; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(batch, seeds=seeds, noise=noise)
    finally:
        model.train(was_training)


def sample_losses(model: MaskedAutoencoder, out: MAEOutput) -> Tensor:
    """The model's loss per sample: B values (their mean is `out.loss` when every sample
    hides as many tokens, as all masking strategies do)."""
    rows = [slice(i, i + 1) for i in range(len(out.pred))]
    return torch.stack([model.loss_fn(out.pred[r], out.target[r], out.loss_weight[r]) for r in rows])  # B


def panel_titles(model: MaskedAutoencoder) -> dict[str, str]:
    """Column titles for the panels that `reconstruction_panels` returns for this model.

    For norm_pix models the reconstruction title says that hidden tokens were mapped back with
    the input token's own statistics: that picture borrows the target's mean and variance.
    """
    hidden = getattr(model.tokenizer, "picture_hidden", "gray")  # how `picture_fill` renders: "gray" unless said
    titles = {INPUT: "input", MASKED: f"masked (hidden = {hidden})", RECONSTRUCTION: "reconstruction + visible"}
    if model.target_norm is not None:
        titles[RECONSTRUCTION] = f"reconstruction + visible; {_NORM_PIX_NOTE}"
        titles[PREDICTION] = "reconstruction + visible; hidden tokens mapped back with the visible tokens' mean statistics (no leak)"
    return titles


def panels_from_output(
    model: MaskedAutoencoder, batch: Any, out: MAEOutput, *, render: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The panels of `reconstruction_panels` from a forward pass already made on `batch` (a
    multi-modal model: every modality side by side, `pictures.multimodal`)."""
    from anymae.tasks.pictures.multimodal import is_multimodal, multimodal_panels

    if is_multimodal(model, out):
        return multimodal_panels(model, batch, out, render)
    opts = dict(render or {})
    to_pictures = _render_fn(model, "to_pictures")
    fill = _render_fn(model, "picture_fill")
    tokens, untokenize = out.tokens, model.tokenizer.untokenize
    raw = tokens.target  # B×N×P
    hidden = out.mask.unsqueeze(-1) > 0  # B×N×1, True = hidden from the encoder
    masked = torch.where(hidden, fill(tokens, **opts), raw)  # B×N×P (a NaN fill stays off visible tokens)
    reconstruction = model.reconstruct(out, stats="own")
    panels = {
        INPUT: to_pictures(batch, **opts),
        MASKED: to_pictures(untokenize(masked, tokens), **opts),
        RECONSTRUCTION: to_pictures(reconstruction, **opts),
    }
    if model.target_norm is not None:
        panels[PREDICTION] = to_pictures(model.reconstruct(out, stats="visible"), **opts)
    return panels


def reconstruction_panels(
    model: MaskedAutoencoder,
    batch: Any,
    *,
    seeds: Tensor | None = None,
    noise: Tensor | None = None,
    render: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Input, masked input, reconstruction (and normalized prediction) pictures of one batch.

    Runs the model in eval mode under no_grad. Columns, each B×H×W×3 uint8:
    "input"; "masked" (hidden tokens flat mid-gray, visible tokens exactly the input);
    "reconstruction" (`model.reconstruct(out)`: visible tokens pasted from the input, hidden
    tokens predicted; for norm_pix models mapped back with each hidden token's own statistics);
    for norm_pix models also "prediction" (hidden tokens mapped back with the visible tokens'
    average statistics, `model.reconstruct(out, stats="visible")`: nothing of the answer leaks).

    Args:
        model: a MaskedAutoencoder whose tokenizer has `to_pictures` and `picture_fill`.
        batch: the modality batch (e.g. B×C×H×W normalized images) on the model's device.
        seeds: B int64 per-sample mask seeds (reproducible pictures).
        noise: B×N injected masking scores (small = visible).
        render: keyword options for the tokenizer's rendering (images: `mean`, `std`).

    Returns:
        {column key: B×H×W×3 uint8}; `panel_titles(model)` gives the column titles.
    """
    out = run_for_pictures(model, batch, seeds=seeds, noise=noise)
    return panels_from_output(model, batch, out, render=render)


def _write_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Save a figure as PNG atomically: temp file in the same folder, fsync, rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_write(target, "wb") as f:
        fig.savefig(f, format="png")
    return target


def save_reconstruction_png(
    path: str | os.PathLike[str],
    model: MaskedAutoencoder,
    batch: Any,
    *,
    seeds: Tensor | None = None,
    noise: Tensor | None = None,
    max_rows: int = 8,
    title: str | None = None,
    render: Mapping[str, Any] | None = None,
) -> Path:
    """Write a labelled reconstruction grid: one row per sample, one column per panel.

    Row labels give each sample's loss (the model's own loss, on its hidden tokens); column
    titles come from `panel_titles`. Arguments as in `reconstruction_panels`, plus:

    Args:
        path: the PNG file to write (folders are created).
        max_rows: at most this many samples (the first ones) are drawn.
        title: figure title; default: the preset name and the share of hidden tokens.

    Returns:
        The written path.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    out = run_for_pictures(model, batch, seeds=seeds, noise=noise)
    panels = panels_from_output(model, batch, out, render=render)
    losses = sample_losses(model, out).tolist()
    titles = panel_titles(model)
    rows, cols = min(max_rows, len(losses)), len(panels)
    h, w = next(iter(panels.values())).shape[1:3]
    cell = 1.8  # inches per panel width
    fig = Figure(figsize=(cols * cell + 0.6, rows * cell * h / w + 1.2), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for c, (key, pictures) in enumerate(panels.items()):
        axes[0, c].set_title(textwrap.fill(titles[key], 24), fontsize=8)
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(pictures[r], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    for r in range(rows):
        axes[r, 0].set_ylabel(f"#{r}\nloss {losses[r]:.4f}", fontsize=8)
    hidden = float(out.mask.mean())
    name = model.config.get("name", type(model).__name__)
    fig.suptitle(title or f"{name}: {hidden:.0%} of tokens hidden", fontsize=10)
    return _write_figure(fig, path)


def _project(x: np.ndarray, method: str) -> tuple[np.ndarray, tuple[str, str]]:
    """N×D -> (N×2 projection, axis labels)."""
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0)
        xy = pca.fit_transform(x)
        r1, r2 = pca.explained_variance_ratio_
        return xy, (f"PC1 ({r1:.0%})", f"PC2 ({r2:.0%})")
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(x) - 1) / 3)  # must stay below N
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(x)
    return xy, ("t-SNE 1", "t-SNE 2")


def save_embedding_png(
    path: str | os.PathLike[str],
    features: Mapping[str, Tensor],
    labels: Tensor,
    *,
    class_names: list[str] | None = None,
    method: Literal["pca", "tsne"] = "pca",
    title: str | None = None,
) -> Path:
    """Write a 2-D projection of features, one scatter panel per entry, coloured by label.

    Args:
        path: the PNG file to write (folders are created).
        features: {panel name: N×D features}, e.g. {"pretrained": ..., "random init": ...}; every
            entry describes the same N samples.
        labels: N integer class labels.
        class_names: names for the labels (index = label) shown in the legend.
        method: "pca" (sklearn PCA) or "tsne" (sklearn TSNE, random_state=0, PCA init).
        title: figure title.

    Returns:
        The written path.
    """
    if method not in ("pca", "tsne"):
        raise ValueError(f"method={method!r}: expected 'pca' or 'tsne'")
    if not features:
        raise ValueError("features is empty: expected {name: N×D tensor}")
    lab = labels.detach().cpu().long().numpy()
    if lab.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor of N class ids, got shape {tuple(labels.shape)}")
    for name, f in features.items():
        if f.ndim != 2 or f.shape[0] != len(lab) or f.shape[1] < 2 or len(lab) < 4:
            raise ValueError(
                f"features[{name!r}] has shape {tuple(f.shape)}: expected N×D with N = {len(lab)} "
                f"(the labels' length, at least 4) and D >= 2"
            )
    classes = np.unique(lab)
    if class_names is not None and (classes.min() < 0 or classes.max() >= len(class_names)):
        raise ValueError(
            f"class_names has {len(class_names)} names but labels range over {classes.min()}..{classes.max()}"
        )
    fig = Figure(figsize=(4.2 * len(features) + 1.6, 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(features), squeeze=False)[0]
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"]
    colours = {k: cmap(i if len(classes) <= 20 else i / max(1, len(classes) - 1)) for i, k in enumerate(classes)}
    for ax, (name, f) in zip(axes, features.items()):
        xy, (xlabel, ylabel) = _project(f.detach().cpu().double().numpy(), method)
        for k in classes:
            sel = lab == k
            label = class_names[k] if class_names is not None else str(k)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=colours[k], label=label)
        ax.set_title(f"{name} ({'PCA' if method == 'pca' else 't-SNE'})", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    if len(classes) <= 20:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8, markerscale=1.5)
    if title:
        fig.suptitle(title, fontsize=11)
    return _write_figure(fig, path)
