"""Generic task edits for video: multi-view evaluation, per-clip seeds of repeated sampling, GIF frames."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import anymae
from anymae.datasets.contract import SampleDataset
from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.tasks.pictures.animation import animation_frames
from anymae.tasks.train.engine import pretrain_objective
from anymae.tasks.finetune.scoring import evaluate_classifier


class _Views(Dataset, SampleDataset):
    """Items x: V×4 with a known per-view score pattern; `num_views = V`."""

    num_views = 3

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(10, 3, 4, generator=g)
        self.y = torch.randint(0, 4, (10,), generator=g)

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])


def test_multi_view_evaluation_averages_probabilities_per_item() -> None:
    data = _Views()
    model = nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.copy_(torch.eye(4) * 3)
        probs = model(data.x).softmax(-1).mean(1)  # 10×4: brute force per item
        logits = model(data.x).mean(1)
    expect_p = 100.0 * int((probs.argmax(1) == data.y).sum()) / 10
    expect_l = 100.0 * int((logits.argmax(1) == data.y).sum()) / 10
    assert not torch.equal(probs.argmax(1), model(data.x[:, 0]).argmax(1))  # views matter
    assert evaluate_classifier(model, data, batch_size=4) == expect_p
    assert evaluate_classifier(model, SeededSamples(data, 0), batch_size=3, view_average="logit") == expect_l


class _Clips(Dataset, SampleDataset):
    """2 items of k=2 clips each (k×C×T×H×W), concatenated item-major by `collate_x`."""

    inputs_per_item = 2

    def __init__(self, clips: Tensor) -> None:
        self.clips = clips  # (2·2)×C×T×H×W

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.clips[2 * i : 2 * i + 2], -1

    def collate_x(self, xs: list[Tensor]) -> Tensor:
        return torch.cat(xs)


def test_repeated_clips_get_their_own_mask_seeds() -> None:
    model = anymae.create_model("videomae_vit_tiny_patch8", depth=1, decoder_depth=1)
    x = model.tokenizer.example(4)  # 2 items × k=2 clips, item-major
    data = SeededSamples(_Clips(x), base_seed=0)
    batch = data.collate([(x[0:2], -1, 11), (x[2:4], -1, 12)])  # items with sample seeds 11 and 12
    assert torch.equal(batch[0], x)
    loss, _ = pretrain_objective(model, batch)
    per_clip = torch.tensor([sample_seed(s, 0, j) for s in (11, 12) for j in range(2)])
    out = model(x, seeds=per_clip)
    assert torch.equal(loss, out.loss)
    masks = out.mask
    assert not torch.equal(masks[0], masks[1])  # the two clips of item 0 are masked differently


def test_animation_frames_cut_strips_into_frames() -> None:
    strip = np.arange(2 * 3 * 12 * 3, dtype=np.uint8).reshape(2, 3, 12, 3)  # B=2, H=3, T·W = 3·4
    frames = animation_frames({"a": strip, "b": 255 - strip}, frame_width=4)
    assert len(frames) == 3 and frames[0].shape == (2 * 3 + 2, 2 * 4 + 2, 3)
    assert np.array_equal(frames[1][:3, :4], strip[0, :, 4:8])
    assert np.array_equal(frames[2][5:8, 6:10], 255 - strip[1, :, 8:12])


def test_shared_probes_run_on_video_features() -> None:
    from anymae.datasets.sources import build_dataset
    from anymae.tasks.evaluate.probe import ProbeSettings, probe_encoder

    model = anymae.create_model("videomae_vit_tiny_patch8", depth=1, decoder_depth=1, num_frames=4)
    section = {"source": "synthetic_videos", "n": 16}
    train = build_dataset(section, split="train", model_config=model.config)
    test = build_dataset(section, split="test", model_config=model.config)
    settings = ProbeSettings(protocols=["knn", "linear"], pool="mean", epochs=2, warmup_epochs=0, batch_size=8, k=3)
    results = probe_encoder(model, train, test, settings)
    assert set(results) == {"knn", "linear"} and all(0.0 <= v <= 100.0 for v in results.values())
