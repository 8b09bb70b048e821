"""`probe.modality`: probes read one modality's modality-only features or the joint features of a
cross-modal checkpoint (CAV-MAE's audio-only / visual-only / multimodal modes)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

import anymae
from anymae.core.pooling import pool
from anymae.datasets.contract import SampleDataset
from anymae.tasks.evaluate.probe import ProbeSettings, encoder_features, probe_encoder

SMALL = {"target_length": 32, "num_mel_bins": 32, "img_size": 8, "depth": 2, "modality_depth": 1,
         "decoder_depth": 1, "embed_dim": 32, "num_heads": 2, "decoder_embed_dim": 32, "decoder_num_heads": 2}


class Pairs(Dataset, SampleDataset):
    """In-memory audio-visual items ({"audio": 1×32×32, "video": 3×8×8}, label)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = [i % 2 for i in range(n)]
        self.audio = torch.randn(n, 1, 32, 32, generator=g) + torch.tensor(self.labels)[:, None, None, None]
        self.video = torch.randn(n, 3, 8, 8, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        return {"audio": self.audio[i], "video": self.video[i]}, self.labels[i]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return anymae.create_model("cavmae_tiny", **SMALL).eval()


def test_each_mode_reads_its_own_pass(model: torch.nn.Module) -> None:
    data = Pairs(6, 0)
    batch = {"audio": data.audio, "video": data.video}
    with torch.no_grad():
        for mode, expect in (("audio", pool(model.features(batch, modality="audio"), "mean")),
                             ("video", pool(model.features(batch, modality="video"), "mean")),
                             ("joint", pool(model.features(batch), "mean"))):
            got = encoder_features(model, data, ("mean",), modality=mode)["mean"]
            torch.testing.assert_close(got.features, expect)
            assert got.labels.tolist() == data.labels
    audio = encoder_features(model, data, ("mean",), modality="audio")["mean"].features
    video = encoder_features(model, data, ("mean",), modality="video")["mean"].features
    assert not torch.allclose(audio, video)


def test_a_probe_on_one_modality_and_a_bad_mode(model: torch.nn.Module) -> None:
    settings = ProbeSettings(protocols=["knn"], pool="mean", modality="audio", k=3)
    top1 = probe_encoder(model, Pairs(8, 1), Pairs(8, 2), settings)["knn"]
    assert 0 <= top1 <= 100
    with pytest.raises(ValueError, match=r"probe.modality='depth': expected 'joint' or one of the model's modalities \['audio', 'video'\]"):
        probe_encoder(model, Pairs(4, 1), Pairs(4, 2), ProbeSettings(protocols=["knn"], pool="mean", modality="depth"))


def test_a_classifier_reads_one_modality_or_the_joint_features(model: torch.nn.Module) -> None:
    from anymae.tasks.finetune.classifier import Classifier

    data = Pairs(4, 3)
    batch = {"audio": data.audio, "video": data.video}
    for mode in ("audio", "video", None):
        clf = Classifier.from_mae(model, 3, pool="mean", drop_path=0.0, modality=mode).eval()
        with torch.no_grad():
            feats = clf._body.features(batch, final_norm=False, modality=mode)
            expect = clf.head(clf.fc_norm(pool(feats, "mean")))  # MAE's global pool: mean, fc_norm, head
            torch.testing.assert_close(clf(batch), expect)
        assert clf.config["modality"] == mode
    a = Classifier.from_mae(model, 3, drop_path=0.0, modality="audio").eval()
    v = Classifier.from_mae(model, 3, drop_path=0.0, modality="video").eval()
    v.head.load_state_dict(a.head.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(batch), v(batch))  # the two modes read different passes
    with pytest.raises(ValueError, match="modality='depth'"):
        Classifier.from_mae(model, 3, modality="depth")
