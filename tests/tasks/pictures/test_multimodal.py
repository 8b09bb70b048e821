"""Reconstruction pictures of a multi-modal model: every modality of a sample side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import anymae
from anymae.tasks.pictures.figures import reconstruction_panels, save_reconstruction_png
from anymae.tasks.pictures.multimodal import GAP, side_by_side

SMALL = {"target_length": 64, "num_mel_bins": 32, "img_size": 8, "depth": 2, "modality_depth": 1,
         "decoder_depth": 1, "embed_dim": 32, "num_heads": 2, "decoder_embed_dim": 32, "decoder_num_heads": 2}


def test_side_by_side_enlarges_top_aligns_and_separates() -> None:
    a = np.zeros((2, 4, 6, 3), np.uint8)
    b = np.full((2, 2, 2, 3), 7, np.uint8)
    c = np.full((2, 3, 1, 3), 9, np.uint8)
    out = side_by_side([a, b, c])
    assert out.shape == (2, 4, 6 + GAP + 4 + GAP + 1, 3)  # b doubled to 4×4; c kept (4 // 3 = 1)
    assert (out[:, :, :6] == 0).all() and (out[:, :, 6 : 6 + GAP] == 255).all()
    assert (out[:, :, 6 + GAP : 10 + GAP] == 7).all()
    right = out[:, :, 10 + 2 * GAP :]
    assert (right[:, :3] == 9).all() and (right[:, 3:] == 255).all()  # top-aligned, white below


def test_cavmae_panels_draw_the_fbank_and_the_frame(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = anymae.create_model("cavmae_tiny", **SMALL).eval()
    batch = model.tokenizer.example(2)
    panels = reconstruction_panels(model, batch, seeds=torch.arange(2))
    spec = model.tokenizer.tokenizers["audio"].to_pictures(batch["audio"])  # 2×F×T×3 = 2×32×64×3
    frame = model.tokenizer.tokenizers["video"].to_pictures(batch["video"])  # 2×8×8×3, drawn ×4
    assert panels["input"].shape == (2, 32, 64 + GAP + 32, 3)
    assert np.array_equal(panels["input"][:, :, :64], spec)
    assert np.array_equal(panels["input"][:, :, 64 + GAP :][:, ::4, ::4], frame)
    masked = panels["masked"]
    same = (masked == panels["input"]).all(-1)  # visible tokens are drawn exactly as the input
    assert 0.1 < same[:, :, :64].mean() < 0.5 and 0.1 < same[:, :, 64 + GAP :].mean() < 0.5  # 75 % hidden
    path = save_reconstruction_png(tmp_path / "r.png", model, batch, seeds=torch.arange(2))
    with Image.open(path) as im:
        assert im.format == "PNG"
