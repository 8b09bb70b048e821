"""k-means ids: nearest-centroid assignment equals faiss' exact index and a brute-force argmin, fits are
deterministic in the seed, the raw vectors are un-normalized and reordered as CCViT's, files load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.core.losses import get_loss
from anymae.core.targets.codebook import Codebook, KMeansIds, load_centroids_file
from anymae.core.tokens import Tokens

faiss = pytest.importorskip("faiss")


def test_assign_equals_faiss_flat_index_and_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    cb = Codebook(50, 12)
    cb.set_centroids(torch.randn(50, 12, generator=g), "test")
    x = torch.randn(3, 700, 12, generator=g)  # 2100 rows: crosses the 4096-row block only via reshape
    ids = cb.assign(x)
    brute = torch.cdist(x.reshape(-1, 12).double(), cb.centroids.double()).argmin(-1).view(3, 700)
    assert torch.equal(ids, brute)
    index = faiss.IndexFlatL2(12)
    index.add(cb.centroids.numpy())
    _, fids = index.search(x.reshape(-1, 12).numpy(), 1)
    assert torch.equal(ids.reshape(-1), torch.from_numpy(fids[:, 0]).long())


def test_fit_is_deterministic_in_the_seed_and_better_than_random() -> None:
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(8, 6, generator=g) * 10
    data = (centers[torch.randint(0, 8, (800,), generator=g)] + torch.randn(800, 6, generator=g) * 0.1)
    a, b = Codebook(8, 6), Codebook(8, 6)
    a.fit_kmeans(data, seed=3)
    b.fit_kmeans(data, seed=3)
    assert torch.equal(a.centroids, b.centroids) and bool(a.fitted)
    err = (data - a.centroids[a.assign(data)]).pow(2).sum(-1).mean()
    assert err < 0.1 * (data - data.mean(0)).pow(2).sum(-1).mean()  # well-separated blobs are found


def test_raw_vectors_unnormalize_and_go_channel_first() -> None:
    # tokens of 2 pixels × 3 channels, channel-last (p, c): [p0c0, p0c1, p0c2, p1c0, p1c1, p1c2]
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.1, 0.5)
    raw01 = torch.tensor([[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]])
    normed = (raw01.view(1, 1, 2, 3) - torch.tensor(mean)) / torch.tensor(std)
    tokens = Tokens(x=torch.zeros(1, 1, 4), target=normed.view(1, 1, 6), grid=(1,))
    t = KMeansIds(4, 6, channels=3, channel_first=True, mean=mean, std=std)
    expected = torch.tensor([[[0.1, 0.4, 0.2, 0.5, 0.3, 0.6]]])  # (c, p): c0p0, c0p1, c1p0, ...
    assert torch.allclose(t.raw(tokens), expected, atol=1e-6)
    with pytest.raises(RuntimeError, match="not fitted"):
        t(tokens, None, {}, torch.nn.Module())
    t.codebook.set_centroids(torch.stack([expected[0, 0], torch.zeros(6), torch.ones(6), -torch.ones(6)]), "test")
    assert t(tokens, None, {}, torch.nn.Module()).tolist() == [[[0]]]


def test_centroid_files(tmp_path: Path) -> None:
    c = torch.randn(4, 6)
    np.save(tmp_path / "c.npy", c.numpy())
    torch.save({"centroids": c}, tmp_path / "c.pt")
    for name in ("c.npy", "c.pt"):
        t = KMeansIds(4, 6)
        t.load(tmp_path / name)
        assert torch.equal(t.codebook.centroids, c) and t.fitted
    with pytest.raises(ValueError, match=r"shape \(4, 6\), expected 5×6"):
        KMeansIds(5, 6).load(tmp_path / "c.npy")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        load_centroids_file(tmp_path / "nope.npy")


def test_cross_entropy_over_the_loss_set() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 7, generator=g)
    ids = torch.randint(0, 7, (2, 5, 1), generator=g)
    weight = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 1, 1, 0]])
    sel = weight.bool()
    expected = torch.nn.functional.cross_entropy(logits[sel], ids.squeeze(-1)[sel])  # BEiT v2's form
    assert torch.allclose(get_loss("ce")(logits, ids, weight), expected)
    by_hand = -(logits.log_softmax(-1).gather(-1, ids).squeeze(-1) * weight).sum() / weight.sum()
    assert torch.allclose(get_loss("ce")(logits, ids, weight), by_hand)
    with pytest.raises(TypeError, match="integer class ids"):
        get_loss("ce")(logits, ids.float(), weight)


def test_assign_stays_float32_under_autocast() -> None:
    # near-identical centroids: a bf16 matmul would pick wrong ids for (almost) every vector
    g = torch.Generator().manual_seed(0)
    cb = Codebook(32, 16)
    cb.set_centroids(torch.randn(1, 16, generator=g) + 0.01 * torch.randn(32, 16, generator=g), "test")
    x = cb.centroids[:1] + 0.01 * torch.randn(200, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ids = cb.assign(x)
    assert torch.equal(ids, torch.cdist(x.double(), cb.centroids.double()).argmin(-1))
