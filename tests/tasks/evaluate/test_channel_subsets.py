"""Channel-subset evaluation and the hybrid-token-fusion pool of the classifier."""

from __future__ import annotations

import pytest
import torch

import anymae
from anymae.modalities.multichannel import ChannelStack
from anymae.tasks.evaluate.channel_subsets import ChannelSubset, evaluate_channel_subsets
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.train.optim import layer_id

NAMES = [f"ch{i}" for i in range(5)]


class _Items(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [(ChannelStack(torch.randn(3, 16, 16, generator=g), torch.tensor([0, 2, 4])), i % 2) for i in range(6)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _classifier(pool: str = "cls_attn") -> Classifier:
    torch.manual_seed(0)
    mae = anymae.create_model("chamaevit_tiny_patch8", img_size=16, embed_dim=32, depth=1, num_heads=2, decoder_num_heads=2)
    return Classifier.from_mae(mae, 2, pool=pool, drop_path=0.0).eval()  # type: ignore[arg-type]


def test_subset_view_selects_channels_by_id_in_order() -> None:
    data = _Items()
    x, label = ChannelSubset(data, [4, 0], ["ch4", "ch0"])[1]
    assert torch.equal(x.channels, torch.tensor([4, 0])) and label == 1
    assert torch.equal(x.pixels, data[1][0].pixels[[2, 0]])
    with pytest.raises(ValueError, match=r"no channel\(s\) \['ch1'\]"):
        ChannelSubset(data, [1], ["ch1"])[0]


def test_each_subset_scores_the_same_model_on_its_channels() -> None:
    clf, data = _classifier(), _Items()
    res = evaluate_channel_subsets(clf, data, [["ch0", "ch2", "ch4"], ["ch2"]], channel_names=NAMES, batch_size=4)
    assert list(res) == ["ch0+ch2+ch4", "ch2"]
    with torch.no_grad():
        for key, ids, pos in (("ch0+ch2+ch4", [0, 2, 4], [0, 1, 2]), ("ch2", [2], [1])):
            x = ChannelStack(torch.stack([data[i][0].pixels[pos] for i in range(6)]), torch.tensor(ids))
            correct = (clf(x).argmax(1) == torch.tensor([i % 2 for i in range(6)])).float().mean()
            assert res[key] == pytest.approx(100 * float(correct))


@pytest.mark.parametrize("pool", ["cls_attn", "cls_attn_sigmoid"])
def test_hybrid_pool_in_the_classifier(pool: str) -> None:
    clf = _classifier(pool)
    x = ChannelStack(torch.randn(2, 2, 16, 16), torch.tensor([1, 3]))
    feats = clf._body.features(x)
    expected = clf.head(clf.fusion(feats.prefix[:, 0], feats.tokens))
    assert torch.allclose(clf(x), expected) and clf.fusion.gate == (pool == "cls_attn_sigmoid")
    assert {n for n, _ in clf.named_parameters() if n.startswith("fusion.")} == {
        "fusion.query", *(f"fusion.fc_{k}.{w}" for k in "qkvo" for w in ("weight", "bias"))
    }
    assert layer_id("fusion.query", 2) == 2  # trained with the head in layer-wise lr decay
