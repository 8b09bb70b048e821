"""`anymae probe`'s pooling: the feature kinds each protocol reads, the model's default pool, and
the README's probe line on a VideoMAE checkpoint (no cls token) without naming a pooling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymae
from anymae.cli import main
from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.probe import ProbeSettings, needed_poolings, probe_encoder, probe_features, with_model_pool
from anymae.tasks.evaluate.svm import svm_probe
from anymae.tasks.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_VIDEO = {"num_frames": 4, "depth": 1, "decoder_depth": 1, "embed_dim": 32, "num_heads": 2}


def test_needed_poolings_per_protocol() -> None:
    both = ProbeSettings(protocols=["knn", "svm", "attentive"], pool="mean", svm_pool="mean_max")
    assert needed_poolings(both) == ("mean", "mean_max", "tokens")
    assert needed_poolings(ProbeSettings(protocols=["svm"], pool="cls")) == ("cls",)  # svm reads `pool`
    assert needed_poolings(ProbeSettings(protocols=["attentive"])) == ("tokens",)  # no pool needed
    assert needed_poolings(ProbeSettings(protocols=["linear"]), ("cls", "mean")) == ("cls", "mean")
    with pytest.raises(ValueError, match="no pooling chosen"):
        needed_poolings(ProbeSettings(protocols=["knn"]))


def test_unset_pool_becomes_the_models_default(capsys: pytest.CaptureFixture[str]) -> None:
    with torch.device("meta"):
        video = anymae.create_model("videomae_vit_tiny_patch8", **TINY_VIDEO)
        image = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1)
    settings = ProbeSettings(protocols=["knn", "linear"])
    assert with_model_pool(settings, video).pool == "mean" and with_model_pool(settings, image).pool == "cls"
    assert with_model_pool(ProbeSettings(pool="max"), video).pool == "max"
    tokens_only = ProbeSettings(protocols=["attentive"])
    assert with_model_pool(tokens_only, video) is tokens_only  # nothing reads a pool: nothing chosen
    assert capsys.readouterr().out.splitlines() == [
        "probe: pooling 'mean' (the model's default: the encoder has no cls token)",
        "probe: pooling 'cls' (the model's default: the encoder has a cls token)",
    ]


def test_svm_reads_its_own_pool() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(10)
    good = FeatureSet(torch.randn(30, 6, generator=g) + 3 * torch.nn.functional.one_hot(labels, 6), labels)
    noise = FeatureSet(torch.randn(30, 4, generator=g), labels)
    feats = {"mean": noise, "mean_max": good}
    settings = ProbeSettings(protocols=["svm", "knn"], pool="mean", svm_pool="mean_max", k=3)
    results = probe_features(feats, feats, settings)
    assert results["svm"] == svm_probe(good, good).top1 and results["svm"] > 90


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = anymae.create_model("videomae_vit_tiny_patch8", **TINY_VIDEO)
    path = tmp_path_factory.mktemp("probe_video") / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": {"model": dict(model.config)}})
    return path


def test_readme_probe_line_on_a_model_without_cls(video_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`anymae probe --checkpoint <videomae> data... test_data... 'probe.protocols=[knn,linear,attentive]'`."""
    args = ["probe", "--checkpoint", str(video_checkpoint), "data.source=synthetic_videos", "data.n=12",
            "test_data.source=synthetic_videos", "test_data.n=8", "probe.protocols=[knn,linear,attentive]",
            "probe.epochs=2", "probe.warmup_epochs=0", "probe.batch_size=4", "probe.k=3", "probe.num_queries=4",
            "run.device=cpu", "run.num_workers=0"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "probe: pooling 'mean' (the model's default: the encoder has no cls token)" in out
    printed = {line.split()[0]: float(line.split()[2].rstrip("%")) for line in out.splitlines() if " top-1 " in line}
    # the same numbers as probing with pool='mean' named
    from anymae.datasets.sources import build_dataset
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(video_checkpoint)
    train = build_dataset({"source": "synthetic_videos", "n": 12}, split="train", model_config=model.config)
    test = build_dataset({"source": "synthetic_videos", "n": 8}, split="test", model_config=model.config)
    named = ProbeSettings(protocols=["knn", "linear", "attentive"], pool="mean", epochs=2, warmup_epochs=0,
                          batch_size=4, k=3, num_queries=4)  # fmt: skip
    expected = probe_encoder(model, train, test, named)
    assert set(printed) == {"knn", "linear", "attentive"}
    assert printed == {name: round(top1, 2) for name, top1 in expected.items()}
