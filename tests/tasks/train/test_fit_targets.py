"""Data-fitted targets before training: a seeded, deterministic fit saved in the run directory, loaded
instead of refitting, a user's file preferred, and a provider that needs a file names the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import anymae
from anymae.core.config import ConfigError
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.fit_targets import fit_targets, sample_vectors

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = write_image_folder(tmp_path_factory.mktemp("fit") / "images", 6, 2, size=40, fmt="png", seed=0)
    model = _model()
    return build_dataset({"source": "image_folder", "root": str(root), "img_size": 32}, split="pretrain",
                         model_config=model.config)  # fmt: skip


def _model(**kw: object) -> anymae.MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.create_model("ccvit_vit_tiny_patch4", depth=1, num_codes=8, early_layers=1, **kw)


def test_fit_saves_loads_and_is_deterministic(
    dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    a = _model()
    fit_targets(a, dataset, tmp_path / "run", seed=5)
    saved = tmp_path / "run" / "target.codebook.pt"
    assert saved.is_file() and a.target.fitted
    # a second start of the same run loads the file instead of refitting
    b = _model()
    monkeypatch.setattr(type(b.target), "fit", lambda *a, **k: pytest.fail("refitted instead of loading"))
    fit_targets(b, dataset, tmp_path / "run", seed=5)
    assert torch.equal(a.target.codebook.centroids, b.target.codebook.centroids)
    monkeypatch.undo()
    # a fresh run with the same seed fits the same codebook; the codebook is a saved buffer
    c = _model()
    fit_targets(c, dataset, tmp_path / "other", seed=5)
    assert torch.equal(a.target.codebook.centroids, c.target.codebook.centroids)
    assert "target.codebook.centroids" in a.state_dict()


def test_sample_is_seeded_and_bounded(dataset) -> None:  # noqa: ANN001
    m = _model()
    v1 = sample_vectors(m, m.target, dataset, seed=1, max_items=4)
    v2 = sample_vectors(m, m.target, dataset, seed=1, max_items=4)
    assert v1.shape == (4 * 64, 48) and torch.equal(v1, v2)
    assert float(v1.min()) >= -1e-5 and float(v1.max()) <= 1 + 1e-5  # un-normalized [0, 1] pixels
    m.target.max_vectors = 100
    assert sample_vectors(m, m.target, dataset, seed=1, max_items=4).shape == (100, 48)


def test_user_codebook_file_is_used(dataset, tmp_path: Path) -> None:  # noqa: ANN001
    c = torch.rand(8, 48)
    np.save(tmp_path / "mine.npy", c.numpy())
    m = _model(codebook=str(tmp_path / "mine.npy"))
    fit_targets(m, dataset, tmp_path / "run", seed=0)
    assert torch.equal(m.target.codebook.centroids, c)
    assert not (tmp_path / "run" / "target.codebook.pt").exists()


def test_a_tokenizer_without_its_file_names_the_option(dataset, tmp_path: Path) -> None:  # noqa: ANN001
    m = anymae.create_model("beitv2_vit_tiny_patch4", depth=1, early_layers=1, tokenizer_depth=1, num_codes=8)
    with pytest.raises(ConfigError, match="model.tokenizer_file"):
        fit_targets(m, dataset, tmp_path / "run", seed=0)


def test_fit_on_one_batch_for_smoke_runs() -> None:
    from anymae.tasks.train.fit_targets import fit_targets_on_batch

    m = _model()
    x = m.tokenizer.example(2)  # 2 × 64 token vectors for 8 codes
    fit_targets_on_batch(m, x)
    ids = m(x, seeds=torch.arange(2)).target
    assert m.target.fitted and ids.dtype == torch.long and int(ids.max()) < 8
    v = anymae.create_model("beitv2_vit_tiny_patch4", depth=1, early_layers=1, tokenizer_depth=1, num_codes=8)
    fit_targets_on_batch(v, x)  # no fallback: the random initial tokenizer stands in
    assert v.target.fitted and torch.isfinite(v(x, seeds=torch.arange(2)).loss)
