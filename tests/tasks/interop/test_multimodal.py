"""Per-modality export of multi-modal models (CAV-MAE, MultiMAE, OmniMAE): every written encoder loads
strictly into a plain timm VisionTransformer whose features equal anymae's modality-only features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer

import anymae
from anymae.core.registry import get_entry
from anymae.tasks.interop.export import export_model, timm_kwargs
from anymae.tasks.interop.formats import formats_for
from anymae.tasks.interop.multimodal import modality_encoders

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _random_model(name: str, **overrides: Any) -> torch.nn.Module:
    """A tiny preset whose every parameter is random (a swapped norm or a dropped modality embedding shows)."""
    torch.manual_seed(0)
    model = anymae.create_model(name, **{**get_entry(name).small, **overrides}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


def _load_timm(folder: Path, modality: str) -> VisionTransformer:
    """The written encoder in a plain timm ViT built from the JSON next to it (strict load)."""
    vit = VisionTransformer(**json.loads((folder / f"{modality}.json").read_text())).eval()
    vit.load_state_dict(load_file(folder / f"{modality}.safetensors"), strict=True)
    return vit


def _assert_same_features(model: torch.nn.Module, vit: VisionTransformer, batch: dict, modality: str) -> None:
    """timm's per-token outputs and its pooled output equal anymae's modality-only features."""
    with torch.no_grad():
        ours = model.features(batch, modality=modality)
        tokens = vit.forward_features(batch[modality])  # B×(P+N)×D
        pooled = vit(batch[modality])  # B×D (num_classes=0: the pooled features)
    torch.testing.assert_close(tokens[:, vit.num_prefix_tokens :], ours.tokens, **TOL)
    if vit.num_prefix_tokens:  # MultiMAE's global token: timm's "token" pooling
        torch.testing.assert_close(tokens[:, :1], ours.prefix, **TOL)
        torch.testing.assert_close(pooled, ours.prefix[:, 0], **TOL)
    else:  # CAV-MAE / OmniMAE: mean over the tokens, norm before pooling
        torch.testing.assert_close(pooled, ours.pooled("mean"), **TOL)


@pytest.mark.parametrize(("name", "modalities"), [
    ("cavmae_tiny", ("audio", "video")),
    ("multimae_vit_tiny_patch4", ("rgb", "depth")),
])  # fmt: skip
def test_each_modality_is_a_timm_vit_with_its_features(name: str, modalities: tuple[str, ...], tmp_path: Path) -> None:
    model = _random_model(name)
    assert export_model(model, tmp_path / "enc", "timm") == tmp_path / "enc"
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == sorted(
        f"{m}{ext}" for m in modalities for ext in (".json", ".safetensors"))
    batch = model.tokenizer.example(3)
    for m in modalities:
        _assert_same_features(model, _load_timm(tmp_path / "enc", m), batch, m)


def test_cavmae_layout(tmp_path: Path) -> None:
    """audio: 1×T×F "image", no cls token; the joint block carries the modality's stream norms and final
    norm, and the learned modality embedding is folded into the position table."""
    model = _random_model("cavmae_tiny")  # small: 1 modality block + 1 joint block
    enc = modality_encoders(model)
    kw = enc["audio"].timm_kwargs
    assert kw is not None
    assert (kw["img_size"], kw["in_chans"], kw["patch_size"], kw["depth"]) == ([32, 32], 1, 16, 2)
    assert (kw["class_token"], kw["global_pool"], kw["fc_norm"]) == (False, "avg", False)
    assert enc["video"].timm_kwargs["img_size"] == [8, 8] and enc["video"].timm_kwargs["in_chans"] == 3
    e = model.encoder
    audio = enc["audio"].state
    assert "cls_token" not in audio and audio["pos_embed"].shape == (1, 4, 128)
    assert torch.equal(audio["blocks.0.attn.qkv.weight"], e.modality_blocks["audio"][0].attn.qkv.weight)
    assert torch.equal(audio["blocks.1.attn.qkv.weight"], e.blocks[0].attn.qkv.weight)  # the shared joint block
    assert torch.equal(audio["blocks.1.norm1.weight"], e.stream_norms["audio"][0]["norm1"].weight)
    assert torch.equal(enc["video"].state["blocks.1.norm2.bias"], e.stream_norms["video"][0]["norm2"].bias)
    assert torch.equal(audio["norm.weight"], e.modality_norms["audio"].weight)
    table = model.tokenizer.tokenizers["audio"].pos_embed.table  # 1×N×D fixed sin-cos
    torch.testing.assert_close(audio["pos_embed"], table + model.tokenizer.modality_embed["audio"], atol=0, rtol=0)


def test_omnimae_image_is_timm_video_is_anymae_layout(tmp_path: Path) -> None:
    model = _random_model("omnimae_vit_tiny_patch4")
    export_model(model, tmp_path / "enc", "timm")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["image.json", "image.safetensors",
                                                                     "video.safetensors"]
    images, clips = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 2, 8, 8)
    # the image path (a 2-frame clip of equal frames through the tubelet embedding): the kernel summed over time
    vit = _load_timm(tmp_path / "enc", "image")
    kernel = model.tokenizer.tokenizers["video"].patch_embed.proj.weight  # D×C×2×p×p
    torch.testing.assert_close(vit.patch_embed.proj.weight, kernel[:, :, 0] + kernel[:, :, 1], atol=0, rtol=0)
    _assert_same_features(model, vit, {"image": images}, "image")
    # the video path: anymae's own names, said in the metadata; loads into a fresh model of the preset
    with safe_open(tmp_path / "enc" / "video.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "anymae" and "tubelet" in meta["note"]
    state = load_file(tmp_path / "enc" / "video.safetensors")
    assert set(state) == {k for k in model.state_dict() if k.startswith(("encoder.", "tokenizer.tokenizers.video."))}
    fresh = anymae.create_model("omnimae_vit_tiny_patch4", **get_entry("omnimae_vit_tiny_patch4").small).eval()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("decoder", "tokenizer.tokenizers.image.")) for k in missing)
    with torch.no_grad():
        assert torch.equal(fresh.features(clips, modality="video").tokens,
                           model.features(clips, modality="video").tokens)


def test_safetensors_format_holds_the_kwargs_in_its_metadata(tmp_path: Path) -> None:
    model = _random_model("multimae_vit_tiny_patch4")
    export_model(model, tmp_path / "enc", "safetensors")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["depth.safetensors", "rgb.safetensors"]
    with safe_open(tmp_path / "enc" / "depth.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta["modality"] == "depth" and json.loads(meta["anymae_config"])["name"] == "multimae_vit_tiny_patch4"
    assert json.loads(meta["timm_kwargs"]) == modality_encoders(model)["depth"].timm_kwargs


def test_clear_errors(tmp_path: Path) -> None:
    model = _random_model("cavmae_tiny")
    assert formats_for(model.config).formats == ("timm", "safetensors")
    with pytest.raises(ValueError, match="one file per modality; give a folder"):
        export_model(model, tmp_path / "encoder.pth", "timm")
    with pytest.raises(ValueError, match="one encoder per modality"):
        timm_kwargs(model.config)
    with pytest.raises(ValueError, match="audio-visual supports: timm, safetensors"):
        export_model(model, tmp_path / "x.pth", "official")


def test_cli_exports_a_pretrained_cavmae(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`anymae pretrain` (2 steps) then `anymae export --format timm`: each file in timm gives the features."""
    from anymae.cli import main
    from anymae.datasets.audiovisual.synthetic import write_av_folder
    from anymae.tasks.train.pretrain import load_pretrained

    data = write_av_folder(tmp_path / "clips", 2, 2, size=32, seconds=1.5)
    run = tmp_path / "run"
    assert main(["pretrain", "--config", str(CONFIGS / "cavmae_tiny_cpu.yaml"), f"data.root={data}",
                 f"run.out_dir={run}", "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0",
                 "run.ckpt_every=2", "run.log_every=1", "run.tensorboard=false", "run.precision=fp32",
                 "run.seed=0"]) == 0  # fmt: skip
    capsys.readouterr()
    enc = tmp_path / "enc"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--format", "timm", "--out", str(enc)]) == 0
    printed = capsys.readouterr().out
    for m in ("audio", "video"):
        assert f"wrote {enc / m}.safetensors ({m}-only encoder, timm VisionTransformer" in printed
    model = load_pretrained(run / "last.pt").eval()
    batch = model.tokenizer.example(2)  # audio 2×1×128×64, video 2×3×32×32
    for m in ("audio", "video"):
        _assert_same_features(model, _load_timm(enc, m), batch, m)
