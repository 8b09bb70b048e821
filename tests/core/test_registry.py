"""The one registry mechanism (core/registry.py) behind models, maskings, losses and data sources."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from anymae.core.config import ConfigError
from anymae.core.losses import LOSSES, masked_mse
from anymae.core.masking import MASKINGS, TubeMasking
from anymae.core.registry import MODELS, Registry, UnknownNameError, get_entry, list_models


def test_register_directly_and_as_a_decorator_with_metadata() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("b", colour="blue")
    def b() -> int:
        return 2

    one = reg.register("a", 1, colour="red")
    assert one == 1 and b() == 2  # both forms give the object back
    assert list(reg) == ["a", "b"] and len(reg) == 2 and "a" in reg and "c" not in reg
    assert reg["b"] is b and reg.get("a") == 1
    assert reg.entry("a").colour == "red" and reg.names(colour="blue") == ["b"] and reg.names("a*") == ["a"]
    reg.register("a", 1)  # the same object again: a no-op that keeps the metadata
    assert reg.entry("a").colour == "red"
    with pytest.raises(ValueError, match="widget name 'a' is already registered to 1"):
        reg.register("a", 3)
    with pytest.raises(AttributeError, match="'a' has no field or metadata 'size'"):
        reg.entry("a").size
    reg.unregister("a")
    assert list(reg) == ["b"]


def test_unknown_name_lists_known_names_and_the_closest() -> None:
    reg: Registry[int] = Registry("widget", hint="see the docs")
    for i, name in enumerate(["random", "block", "tube"]):
        reg.register(name, i)
    with pytest.raises(UnknownNameError) as err:
        reg.get("randon")
    assert str(err.value) == ("unknown widget 'randon'; expected one of block, random, tube; did you mean 'random'? "
                              "(see the docs)")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    big: Registry[int] = Registry("model")
    for i in range(45):
        big.register(f"{i:02d}", i)
    big.register("vit_base", 45)
    message = str(pytest.raises(KeyError, big.get, "vit_bas").value)
    assert message == "unknown model 'vit_bas'; did you mean 'vit_base'?"  # 46 names: only the close one


def _holder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reg: Registry[int], module: str, body: str) -> None:
    """A module on sys.path that registers into `reg` (reached through a fake module) when imported."""
    holder = types.ModuleType("h5_registry_holder")
    holder.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "h5_registry_holder", holder)
    (tmp_path / f"{module}.py").write_text(f"import h5_registry_holder\n{body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_lazy_entry_imports_its_module_on_first_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reg: Registry[int] = Registry("widget")
    _holder(monkeypatch, tmp_path, reg, "h5_lazy_widgets", "h5_registry_holder.REG.register('lazy', 7, size=3)")
    reg.register_lazy("lazy", "h5_lazy_widgets", size=3)
    assert reg.names() == ["lazy"] and "h5_lazy_widgets" not in sys.modules  # listed, not imported
    assert reg.get("lazy") == 7 and "h5_lazy_widgets" in sys.modules and reg.entry("lazy").size == 3
    reg.register_lazy("ghost", "h5_lazy_widgets")  # a module that does not register the name
    with pytest.raises(UnknownNameError, match="widget 'ghost' is listed but its module 'h5_lazy_widgets' did not"):
        reg.get("ghost")


def test_registry_modules_are_imported_on_first_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reg: Registry[int] = Registry("widget", modules=("h5_widget_provider",))
    _holder(monkeypatch, tmp_path, reg, "h5_widget_provider", "h5_registry_holder.REG.register('w', 5)")
    assert "h5_widget_provider" not in sys.modules
    assert list(reg) == ["w"] and reg["w"] == 5
    reg.register("x", 6)
    assert reg.names() == ["w", "x"]  # the provider is imported once


def test_models_maskings_and_losses_share_the_mechanism() -> None:
    assert all(isinstance(r, Registry) for r in (MODELS, MASKINGS, LOSSES))
    assert MASKINGS["tube"] is TubeMasking and LOSSES["mse"] is masked_mse
    assert set(MASKINGS) == {"random", "random_hide", "block", "tube", "running_cell", "dcp", "nearest_anchor",
                             "grid_lines", "random_cells", "filtered_noise", "score_topk", "score_sample",
                             "score_reveal", "selective", "disjoint", "shuffle_slices", "similarity", "stripes"}
    assert {"mse", "mse_fourier", "chamfer_l2", "sce", "l1", "ce"} == set(LOSSES)
    entry = get_entry("mae_vit_base_patch16")
    assert entry.modality == "image" and entry.obj is MODELS.get("mae_vit_base_patch16")
    assert list_models("mae_vit_*", modality="video") == [] and "mae_vit_base_patch16" in list_models("mae_vit_*")
    with pytest.raises(KeyError, match="unknown model 'mae_vit_bse_patch16'; did you mean 'mae_vit_base_patch16'"):
        get_entry("mae_vit_bse_patch16")
