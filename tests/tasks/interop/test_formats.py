"""The format table keyed by the registered modality: round trips of every official release format,
export/import through the table, and clear errors for (modality, format) pairs that do not exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import anymae
from anymae.core.registry import get_entry, list_models
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.interop.audiomae import anymae_to_official_audiomae
from anymae.tasks.interop.export import export_model, timm_kwargs
from anymae.tasks.interop.formats import (
    FORMATS,
    load_official_weights,
    modality_of,
    official_format,
    to_official_release,
)
from anymae.tasks.interop.points import anymae_to_point_transformer
from anymae.tasks.train.checkpoint import CheckpointError

# (preset, overrides on its `small` sizes, reference names the release must hold)
CASES: dict[str, tuple[str, dict[str, Any], set[str]]] = {
    "image_mae": ("mae_vit_tiny_patch4", {}, {
        "cls_token", "pos_embed", "decoder_pos_embed", "mask_token", "blocks.0.attn.qkv.weight", "decoder_pred.weight",
    }),
    "videomae": ("videomae_vit_tiny_patch8", {}, {
        "encoder.patch_embed.proj.weight", "encoder.blocks.0.attn.q_bias", "encoder.blocks.0.attn.v_bias",
        "encoder_to_decoder.weight", "mask_token", "decoder.blocks.0.attn.qkv.weight", "decoder.head.bias",
    }),
    "videomae_v2": ("videomae2_vit_base_patch16", {}, {
        "encoder.blocks.0.attn.qkv.weight", "encoder_to_decoder.weight", "decoder.norm.weight",
    }),
    "audiomae_local": ("audiomae_tiny_patch16", {"decoder": "local"}, {
        "pos_embed", "decoder_blocks.0.attn.tau", "decoder_blocks.1.attn.tau", "decoder_pred.weight",
    }),
    "audiomae_global": ("audiomae_tiny_patch16", {"decoder": "global"}, {
        "decoder_pos_embed", "decoder_blocks.0.attn.qkv.weight",
    }),
    "point_mae": ("point_mae_tiny", {}, {
        "MAE_encoder.encoder.first_conv.0.weight", "MAE_encoder.blocks.blocks.0.attn.qkv.weight",
        "decoder_pos_embed.0.weight", "increase_dim.0.weight",
    }),
    "point_cmae": ("point_cmae", {}, {
        "mask_token1", "mask_token2", "MAE_decoder_.norm.weight", "increase_dim_.0.weight",
    }),
}  # fmt: skip


def _random_model(name: str, overrides: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """A tiny preset whose every parameter is random (so a swapped or dropped tensor shows)."""
    torch.manual_seed(seed)
    model = anymae.create_model(name, **{**get_entry(name).small, **overrides})
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


def _assert_same(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    """Same keys; same values (bit-exact, except tau / logit_scale: exp and log round to 1 ulp)."""
    assert set(a) == set(b)
    for key in a:
        if key.endswith(("attn.tau", "attn.logit_scale")):
            assert torch.allclose(a[key], b[key], rtol=1e-6, atol=1e-7), key
        else:
            assert torch.equal(a[key], b[key]), key


def test_every_registered_modality_has_its_row() -> None:
    assert {get_entry(n).modality for n in list_models()} == set(FORMATS)
    assert {m: row.formats for m, row in FORMATS.items()} == {
        "image": ("timm", "safetensors", "official"), "audio": ("timm", "safetensors", "official"),
        "video": ("official",), "points": ("official",), "graph": (), "multichannel": (),
        "volume": (), "features": (),
        # one encoder per modality (interop/multimodal.py)
        "audio-visual": ("timm", "safetensors"), "multi-image": ("timm", "safetensors"),
        "image+video": ("timm", "safetensors"),
    }  # fmt: skip


def test_modality_comes_from_the_registry() -> None:
    assert modality_of({"name": "videomae_vit_tiny_patch8"}) == "video"
    assert modality_of({"model": {"name": "point_mae_tiny"}, "num_classes": 3}) == "points"  # a Classifier's config
    with pytest.raises(ValueError, match="no preset name"):
        modality_of({"img_size": 32})
    # a config key that the old sniffing read as "video" / "points" changes nothing
    model = _random_model("mae_vit_tiny_patch4", {})
    model.config |= {"tubelet_size": 2, "num_group": 8}
    assert set(to_official_release(model)["model"]) >= CASES["image_mae"][2]


@pytest.mark.parametrize("case", sorted(CASES))
def test_official_round_trips(case: str, tmp_path: Path) -> None:
    name, overrides, reference_keys = CASES[case]
    model = _random_model(name, overrides)
    fmt = official_format(model.config)
    own = model.state_dict()
    release = to_official_release(model)
    assert set(release) == {fmt.file_key}
    official = release[fmt.file_key]
    assert reference_keys <= set(official)
    assert not any("logit_scale" in k or k.startswith(("tokenizer.", "encoder.blocks.0.attn.qkv.q")) for k in official)

    # anymae -> official -> anymae: every weight back (video: its fixed tables are not stored)
    back = fmt.from_official(official, model.config)
    stored = {k: v for k, v in own.items() if k in back}
    fixed_tables = {k for k in own if k.endswith("pos_embed.table")}
    assert set(own) - set(back) == (fixed_tables if case.startswith("video") else set())
    _assert_same(back, stored)

    # official -> anymae -> official: the same keys and values
    _assert_same(fmt.to_official(back, model.config), official)

    # through a file: export, then import into a fresh model of the same preset
    fresh = anymae.create_model(name, **{**get_entry(name).small, **overrides})
    path = export_model(model, tmp_path / f"{case}.pth", "official")
    untouched = load_official_weights(fresh, path)
    assert untouched == sorted(set(own) - set(back))
    _assert_same(fresh.state_dict(), own)



def test_audiomae_official_export_writes_tau(tmp_path: Path) -> None:
    """The local decoder's logit_scale leaves as the reference's tau = exp(-logit_scale), by hand."""
    model = _random_model("audiomae_tiny_patch16", {"decoder": "local"})
    with torch.no_grad():
        model.decoder.blocks[0].attn.logit_scale.copy_(torch.tensor([0.0, 2.0, -1.0, 0.5]))
    state = torch.load(export_model(model, tmp_path / "audiomae.pth", "official"), weights_only=True)["model"]
    assert not any(k.endswith("logit_scale") for k in state)
    taus = sorted(k for k in state if k.endswith("attn.tau"))
    assert taus == ["decoder_blocks.0.attn.tau", "decoder_blocks.1.attn.tau"]
    expected = torch.tensor([1.0, 0.1353352832, 2.7182818285, 0.6065306597])  # exp(-s) for s = 0, 2, -1, 0.5
    assert torch.allclose(state["decoder_blocks.0.attn.tau"], expected)
    assert torch.allclose(state["decoder_blocks.1.attn.tau"], torch.exp(-model.decoder.blocks[1].attn.logit_scale))
    # and back: a hand-set tau imports as logit_scale = -log(tau)
    state["decoder_blocks.0.attn.tau"] = torch.tensor([0.5, 2.0, 1.0, 4.0])
    fresh = anymae.create_model("audiomae_tiny_patch16", **get_entry("audiomae_tiny_patch16").small)
    assert load_official_weights(fresh, {"model": state}) == []
    ln2 = 0.6931471806
    assert torch.allclose(fresh.decoder.blocks[0].attn.logit_scale, torch.tensor([ln2, -ln2, 0.0, -2 * ln2]))


def _checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """An anymae pretraining checkpoint as `anymae export` reads it (model weights and config)."""
    from anymae.tasks.train.checkpoint import save_checkpoint

    return save_checkpoint(path, {"model": model.state_dict(), "config": {"model": dict(model.config)}})


def test_cli_export_official_on_audiomae_goes_through_the_audiomae_exporter(tmp_path: Path) -> None:
    from anymae.cli import main

    model = _random_model("audiomae_tiny_patch16", {"decoder": "local"})
    ckpt = _checkpoint(model, tmp_path / "last.pt")
    out = tmp_path / "official.pth"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "official", "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)["model"]
    assert set(state) == set(anymae_to_official_audiomae(model.state_dict()))
    assert sum(k.endswith("attn.tau") for k in state) == 2 and not any("logit_scale" in k for k in state)


@pytest.mark.parametrize(
    "name, fmt, supported",
    [("graphmae_gat_tiny", "official", "graph supports: none"),
     ("chamaevit_tiny_patch8", "timm", "multichannel supports: none"),
     ("videomae_vit_tiny_patch8", "safetensors", "video supports: official"),
     ("point_mae_tiny", "timm", "points supports: official")],
)  # fmt: skip
def test_unsupported_pair_names_what_the_modality_supports(name: str, fmt: str, supported: str, tmp_path: Path) -> None:
    model = anymae.create_model(name, **get_entry(name).small)
    with pytest.raises(ValueError, match=f"{name}.*no '{fmt}' format; {supported}"):
        export_model(model, tmp_path / "x.pth", fmt)  # type: ignore[arg-type]
    assert not (tmp_path / "x.pth").exists()
    if fmt == "official":
        with pytest.raises(ValueError, match=supported):
            load_official_weights(model, {"model": {"x": torch.zeros(1)}})
    else:
        with pytest.raises(ValueError, match=supported):
            timm_kwargs(model.config)


def test_unknown_format_and_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anymae.cli import main

    model = anymae.create_model("mae_vit_tiny_patch4", **get_entry("mae_vit_tiny_patch4").small)
    with pytest.raises(ValueError, match="unknown weight format 'onnx'; expected one of timm, safetensors, official"):
        export_model(model, tmp_path / "x.onnx", "onnx")  # type: ignore[arg-type]
    video = anymae.create_model("videomae_vit_tiny_patch8", **get_entry("videomae_vit_tiny_patch8").small)
    ckpt = _checkpoint(video, tmp_path / "last.pt")
    assert main(["export", "--checkpoint", str(ckpt), "--format", "timm", "--out", str(tmp_path / "e.pth")]) == 2
    assert "video supports: official" in capsys.readouterr().err


def test_timm_kwargs_follow_the_modality() -> None:
    image = anymae.create_model("mae_vit_tiny_patch4", img_size=(32, 48), in_chans=2).config
    assert (timm_kwargs(image)["img_size"], timm_kwargs(image)["in_chans"]) == ((32, 48), 2)
    audio = anymae.create_model("audiomae_tiny_patch16", **get_entry("audiomae_tiny_patch16").small).config
    assert (timm_kwargs(audio)["img_size"], timm_kwargs(audio)["in_chans"]) == ((64, 32), 1)


def test_loader_names_keys_that_do_not_fit() -> None:
    model = _random_model("mae_vit_tiny_patch4", {})
    official = to_official_release(model)["model"]
    with pytest.raises(CheckpointError, match=r"state dict \(MAE.*no mapping for key 'head.weight'"):
        load_official_weights(model, {"model": {**official, "head.weight": torch.zeros(2)}})
    wrong = {**official, "decoder_pred.bias": torch.zeros(5)}
    with pytest.raises(CheckpointError, match=r"decoder.head.bias: \(5,\) vs \(48,\)"):
        load_official_weights(model, wrong)
    partial = {k: v for k, v in official.items() if k != "mask_token"}
    with pytest.raises(CheckpointError, match=r"lacks keys this model needs: \['decoder.mask_token'\]"):
        load_official_weights(model, partial)
    fresh = anymae.create_model("mae_vit_tiny_patch4", **get_entry("mae_vit_tiny_patch4").small)
    before = fresh.decoder.mask_token.clone()
    assert load_official_weights(fresh, {"module": partial}, strict=False) == ["decoder.mask_token"]
    assert torch.equal(fresh.decoder.mask_token, before)
    assert torch.equal(fresh.encoder.cls_token, model.encoder.cls_token)


def test_fine_tuned_releases_fill_classifiers_through_the_table() -> None:
    # Audio-MAE fine-tuned (global pool): encoder without `norm`, plus fc_norm / head
    mae = _random_model("audiomae_tiny_patch16", {})
    clf = Classifier.from_mae(mae, 5)
    official = {k: v for k, v in anymae_to_official_audiomae(mae.state_dict()).items()
                if not k.startswith(("decoder", "mask_token", "norm."))}  # fmt: skip
    dim = clf.encoder.dim
    official |= {"fc_norm.weight": torch.rand(dim), "fc_norm.bias": torch.rand(dim),
                 "head.weight": torch.rand(5, dim), "head.bias": torch.rand(5)}  # fmt: skip
    assert load_official_weights(clf, {"model": official}) == []
    assert torch.equal(clf.head.weight, official["head.weight"])
    assert torch.equal(clf.encoder.norm.weight, torch.ones(dim))  # the reference deletes `norm`: identity
    assert torch.equal(clf.encoder.blocks[0].attn.qkv.weight, mae.encoder.blocks[0].attn.qkv.weight)

    # Point-MAE fine-tuned `PointTransformer` (cls_max pool, mlp head), `module.`-prefixed as DDP saves it
    points = _random_model("point_mae_tiny", {})
    source = Classifier.from_mae(points, 4, pool="cls_max", head="mlp")
    release = {f"module.{k}": v for k, v in anymae_to_point_transformer(source.state_dict()).items()}
    target = Classifier.from_mae(_random_model("point_mae_tiny", {}, seed=1), 4, pool="cls_max", head="mlp")
    assert load_official_weights(target, {"base_model": release}) == []
    _assert_same(target.state_dict(), source.state_dict())
