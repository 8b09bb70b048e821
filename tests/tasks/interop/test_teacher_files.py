"""Frozen teachers from user files: anymae checkpoints, timm ViT and HF ViT / ViTMAE state dicts."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import anymae
from anymae.core.skeleton.teacher import FrozenTeacher
from anymae.tasks.interop.mae import export_timm_encoder, hf_vitmae_to_anymae
from anymae.tasks.interop.teacher_files import load_teacher
from anymae.tasks.train.checkpoint import CheckpointError, save_checkpoint
from tests.fuzz.bad_inputs import assert_named_error

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def _mae(depth: int = 2, dim: int = 32, patch: int = 4):
    torch.manual_seed(0)
    return anymae.create_model(
        "mae_vit_tiny_patch4", img_size=16, patch_size=patch, embed_dim=dim, depth=depth, num_heads=2,
        decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
    )  # fmt: skip


def _teacher(**sizes) -> FrozenTeacher:
    """An expected teacher (fresh random weights) of the given sizes."""
    model = _mae(**sizes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # differ from any file, so a load is visible
    return FrozenTeacher(model.tokenizer, model.encoder)


def _hf_vitmae():
    cfg = transformers.ViTMAEConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=16,
        patch_size=4, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=64, layer_norm_eps=1e-6,
    )  # fmt: skip
    torch.manual_seed(1)
    return transformers.ViTMAEForPreTraining(cfg).eval()


def test_anymae_timm_and_hf_vitmae_files_of_the_same_weights_give_the_same_features(tmp_path: Path) -> None:
    hf = _hf_vitmae()
    source = _mae()
    source.load_state_dict(hf_vitmae_to_anymae(hf.state_dict()), strict=True)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4, embed_dim=32,
                            depth=2, num_heads=2, num_classes=5).eval()  # fmt: skip
    head = {k: v for k, v in vit.state_dict().items() if k.startswith("head.")}
    vit.load_state_dict({**export_timm_encoder(source), **head}, strict=True)
    files = {
        "anymae checkpoint": tmp_path / "last.pt",
        "timm ViT / MAE state dict": tmp_path / "timm.pth",
        "HF ViT / ViTMAE state dict": tmp_path / "hf.bin",
    }
    save_checkpoint(files["anymae checkpoint"], {"model": source.state_dict(), "config": {"name": "x"}, "step": 3})
    torch.save(vit.state_dict(), files["timm ViT / MAE state dict"])  # with a classifier head
    torch.save(hf.state_dict(), files["HF ViT / ViTMAE state dict"])  # with a decoder
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = vit.forward_features(x)  # B×(1+16)×32, timm's own forward
    for kind, path in files.items():
        teacher = _teacher()
        assert load_teacher(path, teacher) == kind
        torch.testing.assert_close(teacher(x).latent, want, rtol=1e-5, atol=1e-5, msg=kind)
        assert all(not p.requires_grad for p in teacher.parameters())


def test_hf_vit_model_with_bare_names_and_a_pooler_matches_hf_features(tmp_path: Path) -> None:
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                                 image_size=16, patch_size=4, layer_norm_eps=1e-6)  # fmt: skip
    torch.manual_seed(2)
    hf = transformers.ViTModel(cfg).eval()  # keys embeddings.*, encoder.layer.*, layernorm.*, pooler.*
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(path))
    teacher = _teacher()
    assert load_teacher(path, teacher) == "HF ViT / ViTMAE state dict"
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
    torch.testing.assert_close(teacher(x).latent, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "sizes, expected",
    [
        ({"depth": 3}, "expected depth 2, width 32, found depth 3, width 32; encoder.blocks.2."),
        ({"dim": 16}, "expected depth 2, width 32, found depth 2, width 16; tokenizer.patch_embed.proj.weight: "
                      "expected [32, 3, 4, 4], found [16, 3, 4, 4]"),
        ({"patch": 8}, "tokenizer.patch_embed.proj.weight: expected [32, 3, 4, 4], found [32, 3, 8, 8]"),
    ],
)  # fmt: skip
def test_a_file_of_other_sizes_is_a_one_line_error_naming_file_and_shapes(tmp_path: Path, sizes, expected) -> None:
    path = tmp_path / "other_teacher.pt"
    save_checkpoint(path, {"model": _mae(**sizes).state_dict()})
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    message = assert_named_error(lambda: load_teacher(path, teacher), path, error=CheckpointError)
    assert message.startswith(f"teacher file '{path}' (anymae checkpoint) does not fit the teacher: ")
    assert expected in message
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # left untouched


def test_missing_unreadable_and_foreign_files_are_named_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    assert_named_error(lambda: load_teacher(missing, _teacher()), missing, error=FileNotFoundError)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02 not a checkpoint" * 10)
    assert_named_error(lambda: load_teacher(garbage, _teacher()), garbage, error=CheckpointError)
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, foreign)
    message = assert_named_error(lambda: load_teacher(foreign, _teacher()), foreign, error=CheckpointError)
    assert "no mapping for key 'conv1.weight'" in message
    bad_safetensors = tmp_path / "cut.safetensors"
    bad_safetensors.write_bytes(b"\x10\x00\x00")
    assert_named_error(lambda: load_teacher(bad_safetensors, _teacher()), bad_safetensors, error=CheckpointError)


def test_a_timm_vit_with_a_learned_cls_position_gives_timms_own_features(tmp_path: Path) -> None:
    torch.manual_seed(4)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4, embed_dim=32,
                            depth=2, num_heads=2, num_classes=0).eval()  # fmt: skip
    assert vit.pos_embed[0, 0].abs().sum() > 0  # timm's init: the cls slot is not zero
    path = tmp_path / "timm_vit.pth"
    torch.save(vit.state_dict(), path)
    teacher = _teacher()
    load_teacher(path, teacher)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = vit.forward_features(x)
    torch.testing.assert_close(teacher(x).latent, want, rtol=1e-5, atol=1e-5)
