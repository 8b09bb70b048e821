from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from einops import repeat
from PIL import Image

import anymae
from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD
from anymae.tasks.pictures.figures import (
    INPUT,
    MASKED,
    PREDICTION,
    RECONSTRUCTION,
    _project,
    panel_titles,
    reconstruction_panels,
    run_for_pictures,
    sample_losses,
    save_embedding_png,
    save_reconstruction_png,
)

PATCH = 4


def _model(**overrides: object) -> anymae.MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1, **overrides)


def _normalize(u8: torch.Tensor) -> torch.Tensor:
    """B×C×H×W uint8 -> ImageNet-normalized float images."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (u8.float() / 255 - mean) / std


def _images(b: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return _normalize(torch.randint(0, 256, (b, 3, 32, 32), generator=g, dtype=torch.uint8))


def _hidden_pixels(model: anymae.MaskedAutoencoder, x: torch.Tensor, seeds: torch.Tensor) -> np.ndarray:
    """B×H×W bool: pixels of tokens hidden from the encoder."""
    mask = run_for_pictures(model, x, seeds=seeds).mask  # B×N
    pix = repeat(mask, "b (h w) -> b (h p) (w q)", h=32 // PATCH, p=PATCH, q=PATCH)
    return pix.bool().numpy()


def test_to_pictures_inverts_imagenet_normalization() -> None:
    u8 = torch.randint(0, 256, (2, 3, 8, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    tok = _model().tokenizer
    pics = tok.to_pictures(_normalize(u8))
    assert pics.shape == (2, 8, 12, 3) and pics.dtype == np.uint8
    expected = u8.permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(pics.astype(int) - expected).max() <= 1


def test_to_pictures_gray_and_extra_channels() -> None:
    gray = _model(in_chans=1).tokenizer
    x = torch.rand(2, 1, 8, 8)
    pics = gray.to_pictures(x, mean=(0.0,), std=(1.0,))
    assert (pics[..., 0] == pics[..., 1]).all() and (pics[..., 0] == pics[..., 2]).all()
    assert np.array_equal(pics[..., 0], (x[:, 0] * 255).round().to(torch.uint8).numpy())
    five = _model(in_chans=5).tokenizer
    x5 = torch.rand(1, 5, 8, 8)
    other = x5.clone()
    other[:, 3:] = 1.0 - other[:, 3:]  # channels past the third are not shown
    flat = {"mean": (0.0,), "std": (1.0,)}
    assert np.array_equal(five.to_pictures(x5, **flat), five.to_pictures(other, **flat))
    expected = (x5[:, :3].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(five.to_pictures(x5, **flat), expected)
    with pytest.raises(ValueError, match="mean/std"):
        five.to_pictures(x5, mean=(0.0, 0.0), std=(1.0, 1.0))
    with pytest.raises(ValueError, match="B×5×H×W"):
        five.to_pictures(torch.rand(1, 3, 8, 8))


def test_panels_masked_and_reconstruction_columns() -> None:
    model, x, seeds = _model(), _images(), torch.arange(3)
    panels = reconstruction_panels(model, x, seeds=seeds)
    assert list(panels) == [INPUT, MASKED, RECONSTRUCTION]
    assert all(p.shape == (3, 32, 32, 3) and p.dtype == np.uint8 for p in panels.values())
    hidden = _hidden_pixels(model, x, seeds)
    assert 0.7 < hidden.mean() < 0.8  # 75% masking
    inp, masked, recon = panels[INPUT], panels[MASKED], panels[RECONSTRUCTION]
    assert np.array_equal(masked[~hidden], inp[~hidden])
    assert (masked[hidden] == 128).all()
    assert np.array_equal(recon[~hidden], inp[~hidden])
    assert (recon[hidden] != inp[hidden]).any(axis=-1).mean() > 0.5


def test_panels_restore_training_mode_and_losses_average_to_loss() -> None:
    model, x = _model(), _images()
    model.train()
    reconstruction_panels(model, x, seeds=torch.arange(3))
    assert model.training
    out = run_for_pictures(model, x, seeds=torch.arange(3))
    per_sample = sample_losses(model, out)
    assert per_sample.shape == (3,)
    assert torch.allclose(per_sample.mean(), out.loss)


def test_norm_pix_model_adds_prediction_column_and_says_what_reconstruction_uses() -> None:
    model, x, seeds = _model(norm_pix_loss=True), _images(), torch.arange(3)
    panels = reconstruction_panels(model, x, seeds=seeds)
    assert list(panels) == [INPUT, MASKED, RECONSTRUCTION, PREDICTION]
    assert "own mean/variance" in panel_titles(model)[RECONSTRUCTION]
    assert "own mean/variance" not in panel_titles(_model())[RECONSTRUCTION]
    hidden = _hidden_pixels(model, x, seeds)
    assert np.array_equal(panels[RECONSTRUCTION][~hidden], panels[INPUT][~hidden])
    # the no-leak column keeps visible pixels and differs from the own-statistics one where hidden
    assert "no leak" in panel_titles(model)[PREDICTION]
    assert np.array_equal(panels[PREDICTION][~hidden], panels[INPUT][~hidden])
    assert not np.array_equal(panels[PREDICTION][hidden], panels[RECONSTRUCTION][hidden])


def test_save_reconstruction_png(tmp_path: Path) -> None:
    model, x = _model(norm_pix_loss=True), _images(3)
    path = save_reconstruction_png(tmp_path / "sub" / "recon.png", model, x, seeds=torch.arange(3), max_rows=2)
    assert path == tmp_path / "sub" / "recon.png"
    with Image.open(path) as im:
        w2, h2 = im.size  # 2 rows × 4 columns: wider than high
    assert w2 > h2
    save_reconstruction_png(path, model, x, seeds=torch.arange(3), max_rows=8, title="three rows")
    with Image.open(path) as im:
        w3, h3 = im.size
    assert w3 == w2 and h3 > h2  # a third row makes it taller, same width
    assert sorted(p.name for p in path.parent.iterdir()) == ["recon.png"]  # no temp file left
    with pytest.raises(ValueError, match="max_rows"):
        save_reconstruction_png(path, model, x, max_rows=0)


def _blobs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)  # 60
    centers = torch.eye(3, 16) * 8
    return centers[labels] + torch.randn(60, 16, generator=g), labels


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_projection_separates_blobs(method: str) -> None:
    feats, labels = _blobs()
    xy, _ = _project(feats.double().numpy(), method)
    assert xy.shape == (60, 2)
    centroids = np.stack([xy[labels.numpy() == k].mean(0) for k in range(3)])  # 3×2
    nearest = np.linalg.norm(xy[:, None] - centroids[None], axis=-1).argmin(1)
    assert (nearest == labels.numpy()).all()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_save_embedding_png(tmp_path: Path, method: str) -> None:
    feats, labels = _blobs()
    noise = torch.randn(60, 16, generator=torch.Generator().manual_seed(1))
    path = save_embedding_png(
        tmp_path / "emb.png", {"pretrained": feats, "random init": noise}, labels,
        class_names=["a", "b", "c"], method=method, title="blobs",
    )
    with Image.open(path) as im:
        w, h = im.size  # two panels side by side
        assert im.format == "PNG"
    assert w > 1.5 * h
    assert [p.name for p in tmp_path.iterdir()] == ["emb.png"]


def test_save_embedding_png_rejects_bad_input(tmp_path: Path) -> None:
    feats, labels = _blobs()
    with pytest.raises(ValueError, match="method"):
        save_embedding_png(tmp_path / "e.png", {"f": feats}, labels, method="umap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"features\['f'\]"):
        save_embedding_png(tmp_path / "e.png", {"f": feats[:10]}, labels)
    with pytest.raises(ValueError, match="class_names"):
        save_embedding_png(tmp_path / "e.png", {"f": feats}, labels, class_names=["a", "b"])
