"""Skipped (unreadable) items in fine-tuning: evaluation drops them, the run reports them, blame is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import anymae
from anymae.core.config import from_dict
from anymae.datasets.audio.synthetic import write_audio_folder
from anymae.datasets.contract import SampleDataset, SubsetView
from anymae.datasets.skips import DataError, Skips
from anymae.tasks.finetune import run as finetune_run
from anymae.tasks.finetune.scoring import evaluate_classifier, predict_scores, scored_items
from tests.fuzz.bad_inputs import write_random

pytestmark = pytest.mark.usefixtures("one_thread")


class _Flaky(Dataset, SampleDataset):
    """Items `(x, label)` from tensors; the items in `bad` fail as an unreadable file does."""

    def __init__(self, x: Tensor, y: list[int], bad: set[int]) -> None:
        self.x, self.y, self.bad = x, y, bad
        self._skips = Skips(len(y), "item", "Flaky", "skip")

    def __len__(self) -> int:
        return len(self.y)

    def _load(self, i: int) -> tuple[Tensor, int]:
        if i in self.bad:
            raise DataError(f"item_{i}.bin is unreadable")
        return self.x[i], self.y[i]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self._skips.get(i, self._load)

    def skipped(self) -> int:
        return self._skips.count()

    def skipped_indices(self) -> list[int]:
        return self._skips.indices()


def _identity() -> nn.Module:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    return model


def _five() -> _Flaky:
    """Predictions 0, -, 1, 1, 0 for labels 0, 1, 1, 0, 1: items 0 and 2 right, 3 and 4 wrong, 1 unreadable.
    Scoring item 1 through its substitute (item 2) would count item 2 twice: 3/5 = 60%."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    return _Flaky(x, [0, 1, 1, 0, 1], bad={1})


def test_evaluation_drops_skipped_items_instead_of_scoring_their_substitutes() -> None:
    data = _five()
    assert evaluate_classifier(_identity(), data, batch_size=2) == 50.0  # 2 right of the 4 readable items
    assert scored_items(data) == (4, 1)
    scores, labels = predict_scores(_identity(), data, batch_size=5)
    assert scores.shape == (4, 2) and labels.tolist() == [0, 1, 0, 1]


def test_a_subset_drops_its_own_positions_of_skipped_items() -> None:
    view = SubsetView(_five(), [4, 1, 0])  # position 1 holds the unreadable item
    assert evaluate_classifier(_identity(), view) == 50.0  # items 4 (wrong) and 0 (right)
    assert view.skipped_indices() == [1] and scored_items(view) == (2, 1)


def test_everything_skipped_is_an_error_not_a_division_by_zero() -> None:
    data = _Flaky(torch.zeros(2, 2), [0, 1], bad={1})
    data._skips.mark(0, DataError("item_0.bin is unreadable"))  # flagged earlier (e.g. in training)
    with pytest.raises(DataError, match=r"Flaky: all 2 items are unreadable"):
        evaluate_classifier(_identity(), data)


def test_audio_finetune_with_skip_blames_only_bad_files_and_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_audio_folder(tmp_path / "clips", 4, ("tone", "noise"), seconds=0.4)  # 8 good clips
    sf.write(root / "tone" / "tone_empty.wav", np.zeros(0, np.float32), 16000)
    write_random(root / "noise" / "noise_random.wav")
    torch.manual_seed(0)
    mae = anymae.create_model("audiomae_tiny_patch16", depth=1, embed_dim=32, num_heads=2, decoder_embed_dim=32,
                              decoder_num_heads=2, local_decoder_depth=2)  # fmt: skip
    monkeypatch.setattr("anymae.tasks.train.pretrain.load_pretrained", lambda checkpoint: mae)
    cfg = from_dict(finetune_run.FinetuneRunConfig, {
        "checkpoint": "unused.pt",
        "data": {"source": "audio_folder", "root": str(root), "on_error": "skip", "mixup": 1.0},
        "finetune": {"num_classes": 2, "mixup": 0.0, "cutmix": 0.0,
                     "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 5}},
        "run": {"out_dir": str(tmp_path / "ft"), "device": "cpu", "num_workers": 0, "tensorboard": False},
    })  # fmt: skip
    capsys.readouterr()
    result = finetune_run.run_finetune(cfg)
    assert result["num_val"] == 8 and result["skipped_val"] == 2  # 10 files, each good one scored once
    assert "(8 samples, 2 unreadable skipped)" in result["protocol"]
    lines = capsys.readouterr().err.strip().splitlines()
    reports = {line.split(":")[0]: line for line in lines if line.startswith(("train:", "val:"))}
    for split in ("train", "val"):  # the mixup partners drawn in training never blamed a good clip
        assert "skipped 2 unusable audio file(s) of 10: " in reports[split]
        assert "tone_empty.wav" in reports[split] and "noise_random.wav" in reports[split]


@pytest.mark.parametrize("kind", ["image"])
def test_real_image_folder_evaluation_scores_each_readable_file_once(tmp_path: Path, kind: str) -> None:
    from anymae.datasets.image.files import ImageFiles
    from anymae.datasets.image.synthetic import write_image_folder, write_truncated_jpeg
    from anymae.datasets.image.transforms import eval_transform

    write_image_folder(tmp_path, 3, ["a", "b"], size=16)  # 6 readable files
    bad = write_truncated_jpeg(tmp_path / "b" / "zz_bad.jpg", size=16)
    data = ImageFiles(tmp_path, eval_transform(16), on_error="skip")
    assert len(data) == 7
    flat = nn.Sequential(nn.Flatten(), nn.LazyLinear(2))
    scores, labels = predict_scores(flat, data, batch_size=4)
    assert scores.shape[0] == 6 and scored_items(data) == (6, 1)  # the bad file is dropped, not scored twice
    assert data.skipped_indices() == [data.samples.index((bad, 1))]
