"""The frozen VQ tokenizer: ids = the largest cosine between task-layer outputs and the codes (by hand),
tokenizer files round-trip, and a wrong or missing file is an error naming the file and the shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.targets.vq import VQTokenizerIds, save_vq_tokenizer
from anymae.modalities.image import ImageTokenizer


def _vq(num_codes: int = 6, dim: int = 16, depth: int = 1) -> VQTokenizerIds:
    torch.manual_seed(0)
    tok = ImageTokenizer(8, 4, 3, dim)
    enc = TransformerEncoder(EncoderConfig(dim=dim, depth=depth, num_heads=2))
    return VQTokenizerIds(tok, enc, code_dim=4, num_codes=num_codes)


def test_ids_are_the_cosine_nearest_codes(tmp_path: Path) -> None:
    src = _vq()
    with torch.no_grad():
        src.codebook.normal_()
        src.task_layer[0].weight.mul_(0.5)
        src.teacher.encoder.blocks[0].mlp.fc2.bias.normal_()
    path = save_vq_tokenizer(src, tmp_path / "tok.pt")
    vq = _vq()
    assert not vq.fitted
    vq.load(path)
    assert vq.fitted and all(not p.requires_grad for p in vq.parameters())
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in vq.file_state().items())
    x = torch.randn(2, 3, 8, 8)
    tokens = vq.teacher.tokenizer(x)
    ids = vq(tokens, x, {}, torch.nn.Module())
    assert ids.shape == (2, 4, 1) and ids.dtype == torch.long
    # by hand: final-normed patch features -> Linear-Tanh-Linear -> cosine to every code
    with torch.no_grad():
        feats, _ = vq.teacher.encoder(tokens.x, vq.teacher.tokenizer.pos_embed(tokens.grid, None))
        z = vq.task_layer[2](torch.tanh(vq.task_layer[0](feats[:, 1:])))
        cos = F.cosine_similarity(z.unsqueeze(2), src.codebook.view(1, 1, 6, 4), dim=-1)  # B×N×K
    assert torch.equal(ids.squeeze(-1), cos.argmax(-1))
    assert len(set(ids.flatten().tolist())) > 1


def test_bad_files_are_named(tmp_path: Path) -> None:
    vq = _vq()
    with pytest.raises(FileNotFoundError, match=r"missing\.pt.*model\.tokenizer_file"):
        vq.load(tmp_path / "missing.pt")
    other = save_vq_tokenizer(_vq(num_codes=9), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"codebook: file \(9, 4\), expected \(6, 4\)"):
        vq.load(other)
    deeper = save_vq_tokenizer(_vq(depth=2), tmp_path / "deeper.pt")
    with pytest.raises(ValueError, match=r"unexpected teacher\.encoder\.blocks\.1"):
        vq.load(deeper)
    with pytest.raises(RuntimeError, match="model.tokenizer_file"):
        vq(vq.teacher.tokenizer(torch.zeros(1, 3, 8, 8)), torch.zeros(1, 3, 8, 8), {}, torch.nn.Module())
