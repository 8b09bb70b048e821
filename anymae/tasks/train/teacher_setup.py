"""Frozen teachers from the file given as `teacher.checkpoint=PATH` (see `tasks.train.prepare`).

The `teacher` section of a run config (`PretrainConfig.teacher`, saved with the run config):

    teacher:
      checkpoint: runs/mae_vit_tiny_cpu/last.pt      # the model's one frozen teacher
    # or, for a model with several frozen teachers, one file per teacher name:
    teacher:
      checkpoint: {teacher: a.pt, other: b.pth}      # (or `teacher: {teacher: a.pt, other: b.pth}`)

Every `FrozenTeacher` of the model (`model.teachers`) must get a file; a model without one refuses a
file. EMA teachers need none. Files are read by `tasks.interop.teacher_files.load_teacher` (anymae
checkpoints, timm / official MAE state dicts, HF ViT / ViTMAE state dicts); one line per teacher
says what was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from anymae.core.config import ConfigError
from anymae.core.skeleton.teacher import FrozenTeacher
from anymae.tasks.interop.teacher_files import load_teacher


def frozen_teachers(model: nn.Module) -> dict[str, FrozenTeacher]:
    """The model's frozen (file-backed) teachers by name."""
    return {k: t for k, t in getattr(model, "teachers", {}).items() if isinstance(t, FrozenTeacher)}


def describe_teacher(teacher: FrozenTeacher) -> str:
    """The architecture a teacher file must have, in words (for errors and the loaded line)."""
    enc, tok = teacher.encoder, teacher.tokenizer
    parts = [f"depth {enc.depth}", f"width {enc.dim}", f"{enc.cfg.num_heads} heads"]
    if hasattr(tok, "patch_size"):
        parts.append(f"patch {tok.patch_size}")
    if hasattr(tok, "in_chans"):
        parts.append(f"{tok.in_chans} channels")
    return f"a ViT encoder ({', '.join(parts)})"


def teacher_files(section: Mapping[str, Any], names: list[str]) -> dict[str, str]:
    """{teacher name: file} from the `teacher` section (module doc).

    Raises:
        ConfigError: an unknown key or teacher name, or a non-path value (named).
    """
    section = dict(section)
    files: dict[str, Any] = {}
    chosen = section.pop("checkpoint", None)
    if isinstance(chosen, Mapping):
        files.update(chosen)
    elif chosen is not None:
        if len(names) != 1:
            raise ConfigError(
                f"teacher.checkpoint: this model has {len(names)} frozen teachers {names}; give one file per name "
                f"(teacher.checkpoint: {{{', '.join(f'{n}: PATH' for n in names)}}})"
            )
        files[names[0]] = chosen
    files.update(section)
    unknown = sorted(set(files) - set(names))
    if unknown:
        raise ConfigError(f"teacher: unknown key(s) {unknown}; expected 'checkpoint' or the teacher names {names}")
    bad = [k for k, v in files.items() if not isinstance(v, str) or not v]
    if bad:
        raise ConfigError(f"teacher: the file of {bad} must be a path, got {[files[k] for k in bad]}")
    return {k: str(v) for k, v in files.items()}


def attach_teacher_files(model: nn.Module, teacher: Mapping[str, Any]) -> dict[str, str]:
    """Fill every frozen teacher of `model` from its file (module doc); print one line per teacher.

    Args:
        model: the freshly built model.
        teacher: the run config's `teacher` section.

    Returns:
        {teacher name: the loaded file's kind}.

    Raises:
        ConfigError: a frozen teacher without a file (naming `teacher.checkpoint` and the expected
            architecture), or a file for a model without a frozen teacher.
        FileNotFoundError / CheckpointError: a missing or mismatched file (naming it and the shapes).
    """
    frozen = frozen_teachers(model)
    section = {k: v for k, v in dict(teacher or {}).items() if v not in (None, "", {})}
    if not frozen:
        if section:
            raise ConfigError(
                f"teacher: this model ({getattr(model, 'config', {}).get('name', type(model).__name__)}) has no "
                f"frozen teacher to load {section!r} into; remove the teacher section"
            )
        return {}
    names = sorted(frozen)
    files = teacher_files(section, names)
    missing = [n for n in names if n not in files]
    if missing:
        wanted = "; ".join(f"{n}: {describe_teacher(frozen[n])}" for n in missing)
        raise ConfigError(
            f"teacher.checkpoint: this model distils from a frozen teacher loaded from a file; give "
            f"teacher.checkpoint=PATH (an anymae pretraining checkpoint, a timm / MAE or an HF ViT state dict) "
            f"with {wanted}"
        )
    kinds: dict[str, str] = {}
    for name in names:
        if not Path(files[name]).is_file():
            raise FileNotFoundError(
                f"teacher.checkpoint: teacher file '{files[name]}' does not exist (teacher {name!r}: expected "
                f"{describe_teacher(frozen[name])})"
            )
        kinds[name] = load_teacher(files[name], frozen[name])
        print(f"teacher {name!r}: loaded {kinds[name]} '{files[name]}' ({describe_teacher(frozen[name])})")
    return kinds


__all__ = ["attach_teacher_files", "describe_teacher", "frozen_teachers", "teacher_files"]
