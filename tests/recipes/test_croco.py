"""CroCo: the cross-view decoder, the two-view wiring, CroCo v1's size, pair data, the CLI on pairs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anymae
from anymae.cli import main
from anymae.core.cross_attention import CrossBlock
from anymae.core.decoders.cross_view import CrossViewDecoder
from anymae.core.decoders.mae import DecoderConfig
from anymae.core.pos_embed import FixedSinCos
from anymae.core.skeleton import Encoded, Views
from anymae.datasets.pairs.files import ImagePairs, find_pairs, write_pair_folder
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset

REPO = Path(__file__).resolve().parents[2]


def test_croco_v1_parameter_count() -> None:
    with torch.device("meta"):
        model = anymae.create_model("croco_vit_base_patch16")
    sizes = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert round(sum(sizes.values()) / 1e6, 2) == 120.08  # crossmodal_and_zoo.md A3 (computed)
    assert round(sum(v for n, v in sizes.items() if n.startswith(("encoder.", "tokenizer."))) / 1e6, 2) == 85.65
    assert round(sum(v for n, v in sizes.items() if n.startswith("decoder.")) / 1e6, 2) == 34.43
    block = sum(v for n, v in sizes.items() if n.startswith("decoder.blocks.0."))
    assert round(block / 1e6, 2) == 4.21  # self + cross attention + MLP, one memory norm
    assert model.encoder.cls_token is None and isinstance(model.decoder.blocks[0], CrossBlock)
    assert model.masking.num_keep(196) == 20  # int(0.9 · 196) = 176 hidden, as RandomMask


def _decoder(norm_memory: bool = True) -> CrossViewDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(dim=16, depth=2, num_heads=2)
    return CrossViewDecoder(cfg, 24, FixedSinCos((4, 4), 16), torch.nn.Linear(16, 5), norm_memory=norm_memory).eval()


def test_cross_view_decoder_shapes_and_memory_dependence() -> None:
    dec = _decoder()
    keep = torch.tensor([[0, 5, 9], [3, 2, 15]])
    query = torch.tensor([[i for i in range(16) if i not in (0, 5, 9)], [i for i in range(16) if i not in (3, 2, 15)]])
    latent = torch.randn(2, 3, 24)
    mem = Encoded(torch.randn(2, 16, 24), 0)
    vis, pred, hidden = dec(latent, num_prefix=0, keep=keep, query=query, grid=(4, 4), memory=mem, return_hidden=True)
    assert vis.shape == (2, 3, 5) and pred.shape == (2, 13, 5) and hidden.shape == (2, 16, 16)
    other = dec(latent, num_prefix=0, keep=keep, query=query, grid=(4, 4), memory=Encoded(torch.randn(2, 16, 24), 0))
    assert not torch.allclose(other[1], pred)  # view 2 changes view 1's predictions
    swapped = Encoded(torch.cat([mem.latent[1:], mem.latent[:1]]), 0)
    again = dec(latent, num_prefix=0, keep=keep, query=query, grid=(4, 4), memory=swapped)
    assert not torch.allclose(again[1][0], pred[0])
    one = Encoded(mem.latent[:1], 0)
    alone = dec(latent[:1], num_prefix=0, keep=keep[:1], query=query[:1], grid=(4, 4), memory=one)
    assert torch.allclose(alone[1], pred[:1], atol=1e-5)  # sample i reads its own memory row only
    with pytest.raises(ValueError, match="whole view"):
        dec(latent, num_prefix=0, keep=keep, query=query, grid=(4, 4), memory=Encoded(torch.randn(2, 7, 24), 0))


def test_cross_view_decoder_is_crocos_block_by_hand() -> None:
    """One block against CroCo's DecoderBlock written out: x + attn(n1 x); y' = norm_y(y);
    x + cross(n2 x, y', y'); x + mlp(n3 x), with memory = embed(y) + pos."""
    dec = _decoder()
    blk = dec.blocks[0]
    keep, query = torch.tensor([[1, 4]]), torch.tensor([[i for i in range(16) if i not in (1, 4)]])
    latent, y = torch.randn(1, 2, 24), torch.randn(1, 16, 24)
    pos = dec.pos_embed((4, 4))
    x = torch.cat([dec.embed(latent) + pos[:, [1, 4]], dec.mask_token.expand(1, 14, -1) + pos[:, query[0]]], 1)
    mem = dec.embed(y) + pos
    ca = blk.cross_attn
    for block in dec.blocks:
        x = x + block.attn(block.norm1(x))
        m = block.norm_k(mem)
        q, k, v = ca.q(block.norm_q(x)), ca.k(m), ca.v(m)
        split = lambda t: t.view(1, -1, 2, 8).transpose(1, 2)  # noqa: E731  B×h×L×d
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / 8**0.5, -1) @ split(v)
        x = x + ca.proj(att.transpose(1, 2).reshape(1, -1, 16))
        x = x + block.mlp(block.norm2(x))
        ca = dec.blocks[1].cross_attn
    want = dec.head(dec.norm(x))
    got = dec(latent, num_prefix=0, keep=keep, query=query, grid=(4, 4), memory=Encoded(y, 0))
    assert torch.allclose(torch.cat(got, 1), want, atol=1e-5)


def test_croco_model_reads_view_two() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("croco_vit_tiny_patch4", depth=1, decoder_depth=1).eval()
    v1, v2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out = model(Views((v1, v2)), seeds=torch.arange(2))
    assert out.mask.sum(1).tolist() == [57, 57]  # int(0.9 · 64) hidden
    assert out.plans[1].hide.shape[1] == 0 and out.plans[1].keep.shape[1] == 64  # view 2 whole
    other = model(Views((v1, torch.randn(2, 3, 32, 32))), seeds=torch.arange(2))
    assert torch.equal(other.plan.keep, out.plan.keep) and not torch.allclose(other.pred, out.pred)
    assert torch.equal(other.target, out.target)  # the target is view 1's


def _png(path: Path, size: int = 40, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_pair_folder_errors(tmp_path: Path) -> None:
    root = write_pair_folder(tmp_path / "pairs", 2)
    assert [(a.name, b.name) for a, b in find_pairs(root)] == [("pair000_1.png", "pair000_2.png"),
                                                                ("pair001_1.png", "pair001_2.png")]
    _png(root / "lonely_1.png")
    with pytest.raises(ValueError, match=r"lonely_1.png has no partner lonely_2"):
        find_pairs(root)
    (root / "lonely_1.png").unlink()
    _png(root / "stray.png")
    with pytest.raises(ValueError, match="stray.png is not part of a pair"):
        find_pairs(root)
    (root / "stray.png").unlink()
    _png(root / "tiny_1.png", size=20)
    _png(root / "tiny_2.png", size=40)
    ds = ImagePairs(root, 32)
    with pytest.raises(DataError, match=r"tiny_1.png is 20×20, smaller than the 32×32 crop"):
        ds[[a.name for a, _ in ds.pairs].index("tiny_1.png")]


def test_pair_crops_are_independent_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "same"
    root.mkdir()
    _png(root / "a_1.png", 48)
    _png(root / "a_2.png", 48)  # identical views: any difference comes from the crops
    differ = ImagePairs(root, 32, color_jitter=False)
    torch.manual_seed(0)
    assert any(not torch.equal(*differ[0][0]) for _ in range(5))  # CroCo: each view its own crop
    same = ImagePairs(root, 32, color_jitter=False, same_crop=True)
    assert all(torch.equal(*same[0][0]) for _ in range(5))
    torch.manual_seed(3)
    first = differ[0][0]
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first, differ[0][0]))  # reproducible from the seed
    test = build_dataset({"source": "image_pairs", "root": str(root)}, split="test", model_config={"img_size": 32})
    v1, v2 = test[0][0]
    assert torch.equal(v1, v2)  # evaluation: both centre-cropped, no jitter
    batch = test.collate_x([test[0][0], test[0][0]])
    assert isinstance(batch, Views) and batch[0].shape == (2, 3, 32, 32)


def test_croco_tiny_pretrains_on_pairs(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = write_pair_folder(tmp_path / "pairs", 8)
    args = ["pretrain", "--config", str(REPO / "configs" / "croco_tiny_cpu.yaml"), f"data.root={data}",
            f"run.out_dir={tmp_path / 'run'}", "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0",
            "run.tensorboard=false"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*plain batch.*")  # the model must get two views
        assert main(args) == 0
    assert (tmp_path / "run" / "last.pt").is_file()
