"""Bird-MAE prototypical probe: head maths against a brute force, and learning an easy task."""

from __future__ import annotations

import torch

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.probe import ProbeSettings, needed_poolings, probe_features
from anymae.tasks.evaluate.prototypical import PrototypeHead, prototypical_probe


def test_head_is_max_pooled_relu_cosine_with_per_class_weights() -> None:
    torch.manual_seed(0)
    head = PrototypeHead(4, 2, per_class=3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 2.0]]))
    tokens = torch.randn(2, 5, 4)
    out = head(tokens).detach()
    for b in range(2):
        for c in range(2):
            total = float(head.bias[c].detach())
            for j in range(3):
                p = head.prototypes[c * 3 + j]
                cos = [max(0.0, float(torch.cosine_similarity(t, p.detach(), dim=0))) for t in tokens[b]]
                total += max(cos) * max(0.0, float(head.weight[c, j].detach()))
            assert abs(float(out[b, c]) - total) < 1e-5
    assert head.orthogonality() >= 0


def test_probe_learns_separable_token_sets() -> None:
    torch.manual_seed(0)
    centers = torch.randn(3, 32)

    def make(n: int) -> FeatureSet:
        labels = torch.arange(n) % 3
        tokens = torch.randn(n, 4, 32)  # uninformative tokens
        tokens[:, 2] = centers[labels] * 3 + torch.randn(n, 32) * 0.3  # one informative token per sample
        return FeatureSet(tokens, labels)

    result = prototypical_probe(make(60), make(30), per_class=2, epochs=10, batch_size=16)
    assert result.top1 == 100.0


def test_registered_as_a_probe_protocol() -> None:
    settings = ProbeSettings(protocols=["prototypical"], prototypes_per_class=2, prototypical_epochs=2)
    assert set(needed_poolings(settings)) == {"tokens", "cls"}
    feats = {"tokens": FeatureSet(torch.randn(6, 4, 8), torch.arange(6) % 2),
             "cls": FeatureSet(torch.randn(6, 8), torch.arange(6) % 2)}
    results = probe_features(feats, feats, settings)
    assert 0.0 <= results["prototypical"] <= 100.0
