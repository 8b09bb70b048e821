"""What anymae offers: modalities, presets and their sizes (counted on the meta device, no memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from anymae.core.config import describe, load_config
from anymae.core.registry import create_model, get_entry, list_models
from anymae.datasets.sources import SOURCES


@dataclass
class InfoConfig:
    """`anymae info`: which models to list (a shell-style pattern, e.g. 'mae_vit_*')."""

    pattern: str = "*"


def load_info_config(path: str | None, overrides: list[str]) -> InfoConfig:
    return load_config(InfoConfig, path, overrides)


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def model_rows(pattern: str = "*") -> list[dict[str, Any]]:
    """One row per preset: name, modality, summary, encoder / decoder / total trainable parameters."""
    rows = []
    for name in list_models(pattern):
        entry = get_entry(name)
        with torch.device("meta"):
            model = create_model(name)
        encoder = _trainable(model.tokenizer) + _trainable(model.encoder)
        rows.append({
            "name": name, "modality": entry.modality, "summary": entry.summary,
            "encoder_params": encoder, "decoder_params": _trainable(model) - encoder, "total_params": _trainable(model),
        })
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of `model_rows`."""
    head = f"{'model':28} {'modality':10} {'encoder':>9} {'decoder':>9} {'total':>9}  summary"
    lines = [head, "-" * len(head)]
    for r in rows:
        m = lambda n: f"{n / 1e6:8.2f}M"  # noqa: E731
        lines.append(
            f"{r['name']:28} {r['modality']:10} {m(r['encoder_params'])} {m(r['decoder_params'])} "
            f"{m(r['total_params'])}  {r['summary']}"
        )
    return "\n".join(lines)


def format_sources() -> str:
    """Every registered data source: its modality, the first line of its doc, and its keys."""
    lines = []
    for entry in SOURCES.entries():
        cls = entry.config
        lines.append(f"  {entry.name} ({entry.modality}): {(cls.__doc__ or '').strip().splitlines()[0]}")
        lines.append("    " + describe(cls).replace("\n", "\n    "))
    return "\n".join(lines)


def run_info(cfg: InfoConfig) -> str:
    """The text `anymae info` prints: the models matching `cfg.pattern`, then every data source."""
    return format_rows(model_rows(cfg.pattern)) + "\n\ndata sources (data.source=...):\n" + format_sources()
