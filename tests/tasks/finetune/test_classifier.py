"""Classifier on a MAE encoder: pooling paths by hand, weight transfer, pretrained loading, layer decay."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

import anymae
from anymae.tasks.train.checkpoint import CheckpointError, save_checkpoint
from anymae.tasks.finetune.classifier import Classifier, load_encoder_weights
from anymae.tasks.train.optim import param_groups


pytestmark = pytest.mark.usefixtures("one_thread")


def _mae(seed: int = 0, **overrides: object) -> anymae.MaskedAutoencoder:
    torch.manual_seed(seed)
    return anymae.create_model("mae_vit_tiny_patch4", depth=2, decoder_depth=1, **overrides)


def _images(n: int = 3, seed: int = 1) -> Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))  # B×C×H×W


def _encoder_by_hand(clf: Classifier, x: Tensor) -> Tensor:
    """Patch embed + fixed positions, cls in front, the blocks; no final norm: B×(1+N)×D."""
    tokens = clf.tokenizer(x)
    h = tokens.x + clf.tokenizer.pos_embed(tokens.grid, tokens.coords)  # B×N×D
    h = torch.cat([clf.encoder.cls_token.expand(x.shape[0], -1, -1), h], dim=1)  # B×(1+N)×D
    for block in clf.encoder.blocks:
        h = block(h)
    return h


def test_output_shapes_for_both_pools() -> None:
    mae = _mae()
    x = _images(3)
    for pool in ("mean", "cls"):
        logits = Classifier.from_mae(mae, 7, pool=pool).eval()(x)
        assert logits.shape == (3, 7)


def test_mean_pool_is_mean_of_unnormed_tokens_then_fc_norm_then_head() -> None:
    clf = Classifier.from_mae(_mae(), 5, pool="mean").eval()
    with torch.no_grad():  # make fc_norm and head non-trivial so a wrong order shows
        clf.fc_norm.weight.uniform_(0.5, 1.5)
        clf.fc_norm.bias.uniform_(-0.5, 0.5)
        clf.head.weight.normal_(0, 0.1)
        clf.encoder.norm.weight.uniform_(2.0, 3.0)
    x = _images(4)
    with torch.no_grad():
        h = _encoder_by_hand(clf, x)[:, 1:]  # B×N×D, cls dropped, no final norm
        expected = clf.head(clf.fc_norm(h.mean(dim=1)))
        with_final_norm = clf.head(clf.fc_norm(clf.encoder.norm(h).mean(dim=1)))
        got = clf(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, with_final_norm, atol=1e-3)
    assert [n for n, p in clf.named_parameters() if not p.requires_grad] == ["encoder.norm.weight", "encoder.norm.bias"]


def test_cls_pool_is_final_norm_of_cls_token_then_head() -> None:
    clf = Classifier.from_mae(_mae(), 5, pool="cls").eval()
    with torch.no_grad():
        clf.head.weight.normal_(0, 0.1)
    x = _images(2)
    with torch.no_grad():
        expected = clf.head(clf.encoder.norm(_encoder_by_hand(clf, x))[:, 0])
        got = clf(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert isinstance(clf.fc_norm, torch.nn.Identity)
    assert all(p.requires_grad for p in clf.parameters())


def test_from_mae_copies_weights_exactly_sets_drop_path_and_leaves_mae_alone() -> None:
    mae = _mae(seed=3)
    clf = Classifier.from_mae(mae, 4, drop_path=0.2)
    mae_state = mae.state_dict()
    body_keys = [k for k in clf.state_dict() if k.startswith(("tokenizer.", "encoder."))]
    assert body_keys and sorted(body_keys) == sorted(k for k in mae_state if k.startswith(("tokenizer.", "encoder.")))
    for k in body_keys:
        assert torch.equal(clf.state_dict()[k], mae_state[k]), k
    assert not any(k.startswith("decoder.") for k in clf.state_dict())
    assert sorted(k for k in clf.state_dict() if not k.startswith(("tokenizer.", "encoder."))) == [
        "fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight",
    ]
    # stochastic depth rises linearly to drop_path over the 2 blocks; the source MAE keeps 0
    assert clf.encoder.blocks[1].drop_path1.drop_prob == pytest.approx(0.2)
    assert isinstance(clf.encoder.blocks[0].drop_path1, torch.nn.Identity)  # rate 0 in the first block
    assert not hasattr(mae.encoder.blocks[1].drop_path1, "drop_prob")
    # copied, not shared
    with torch.no_grad():
        clf.encoder.blocks[0].attn.qkv.weight.add_(1.0)
    assert torch.equal(mae.encoder.blocks[0].attn.qkv.weight, mae_state["encoder.blocks.0.attn.qkv.weight"])


def test_head_init_is_trunc_normal_2e5_with_zero_bias() -> None:
    clf = Classifier.from_mae(_mae(), 50)
    w = clf.head.weight.detach()  # 50×128
    assert float(w.std()) == pytest.approx(2e-5, rel=0.1)
    assert float(w.abs().max()) < 2e-4
    assert torch.count_nonzero(clf.head.bias) == 0
    torch.testing.assert_close(clf.fc_norm.weight, torch.ones(128))
    assert clf.fc_norm.eps == 1e-6


def test_bad_arguments_are_named() -> None:
    mae = _mae()
    with pytest.raises(ValueError, match="pool='median'"):
        Classifier.from_mae(mae, 3, pool="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes=0"):
        Classifier.from_mae(mae, 0)
    body = _mae()
    body.encoder.cls_token = None
    with pytest.raises(ValueError, match="no cls token"):
        Classifier(body, 3, pool="cls")
    mae.config.pop("name")
    with pytest.raises(ValueError, match="no 'name'"):
        Classifier.from_mae(mae, 3)


def test_layer_decay_scales_follow_the_reference() -> None:
    clf = Classifier.from_mae(_mae(), 3, pool="mean")
    groups = param_groups(clf, 0.05, decay_tokens=False, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    named = dict(clf.named_parameters())
    expected = {
        "head.weight": 1.0, "head.bias": 1.0, "fc_norm.weight": 1.0,
        "encoder.blocks.1.mlp.fc1.weight": 0.5, "encoder.blocks.0.attn.qkv.weight": 0.25,
        "tokenizer.patch_embed.proj.weight": 0.125, "encoder.cls_token": 0.125,
    }
    for name, s in expected.items():
        assert scale[id(named[name])] == pytest.approx(s), name
    assert id(named["encoder.norm.weight"]) not in scale  # frozen in mean-pool mode
    assert wd[id(named["encoder.cls_token"])] == 0.0  # fine-tuning exempts the cls token (no_weight_decay)
    assert wd[id(named["head.weight"])] == 0.05 and wd[id(named["head.bias"])] == 0.0


def _save(path: Path, state: dict[str, Tensor]) -> Path:
    save_checkpoint(path, {"model": state})
    return path


def test_load_pretrained_transfers_encoder_exactly_and_skips_decoder(tmp_path: Path) -> None:
    pretrained = _mae(seed=5)
    path = _save(tmp_path / "last.pt", pretrained.state_dict())
    clf = Classifier.from_mae(_mae(seed=6), 3)
    head_before = clf.head.weight.clone()
    report = load_encoder_weights(clf, path)
    src = pretrained.state_dict()
    for k in report.loaded:
        assert torch.equal(clf.state_dict()[k], src[k]), k
    assert "encoder.blocks.1.mlp.fc2.weight" in report.loaded
    assert report.fresh == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert report.skipped and all(k.startswith("decoder.") for k in report.skipped)
    assert torch.equal(clf.head.weight, head_before)


def test_load_pretrained_names_unexpected_missing_and_misshaped_keys(tmp_path: Path) -> None:
    clf = Classifier.from_mae(_mae(), 3)
    state = _mae(seed=2).state_dict()
    state["encoder.extra.weight"] = torch.zeros(2)
    del state["encoder.blocks.0.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): encoder.extra.weight") as err:
        load_encoder_weights(clf, _save(tmp_path / "a.pt", state))
    assert "missing keys (1): encoder.blocks.0.attn.qkv.weight" in str(err.value)
    assert "a.pt" in str(err.value) and "head" not in str(err.value) and "decoder" not in str(err.value)
    wider = _mae(embed_dim=64).state_dict()
    with pytest.raises(CheckpointError, match=r"encoder.cls_token \(checkpoint \[1, 1, 64\] vs model \[1, 1, 128\]\)"):
        load_encoder_weights(clf, _save(tmp_path / "b.pt", wider))
    prefixed = {f"module.{k}": v for k, v in _mae().state_dict().items()}
    with pytest.raises(CheckpointError, match="no 'tokenizer.\\*' / 'encoder.\\*' keys"):
        load_encoder_weights(clf, _save(tmp_path / "c.pt", prefixed))
    torch.save({"weights": 1}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="'model' state dict, found \\['weights'\\]"):
        load_encoder_weights(clf, tmp_path / "d.pt")


@pytest.mark.parametrize("pool", ["max", "sum", "mean_max", "cls_max"])
def test_other_pools_read_the_final_normed_features(pool: str) -> None:
    clf = Classifier.from_mae(_mae(), 5, pool=pool).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        clf.head.weight.normal_(0, 0.1)
    x = _images(2)
    with torch.no_grad():
        h = clf.encoder.norm(_encoder_by_hand(clf, x))  # B×(1+N)×D
        cls, tokens = h[:, 0], h[:, 1:]
        by_hand = {"max": tokens.max(1).values, "sum": tokens.sum(1),
                   "mean_max": torch.cat([tokens.mean(1), tokens.max(1).values], 1),
                   "cls_max": torch.cat([cls, tokens.max(1).values], 1)}[pool]  # fmt: skip
        got = clf(x)
    torch.testing.assert_close(got, clf.head(by_hand), rtol=1e-5, atol=1e-5)
    assert clf.head.in_features == (256 if pool.endswith("_max") else 128)
    # the encoder's own cls token is used for cls_max: no classifier cls token
    own = sorted(k for k in clf.state_dict() if not k.startswith(("tokenizer.", "encoder.")))
    assert own == ["head.bias", "head.weight"]


def test_attentive_pool_fills_the_learned_slot() -> None:
    clf = Classifier.from_mae(_mae(), 4, pool="attentive").eval()
    with torch.no_grad():
        clf.head.weight.normal_(0, 0.1)
    x = _images(2)
    with torch.no_grad():
        tokens = clf.encoder.norm(_encoder_by_hand(clf, x))[:, 1:]  # B×N×D, cls not read
        expected = clf.head(clf.fusion(tokens))
        got = clf(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    fusion = {n for n, _ in clf.named_parameters() if n.startswith("fusion.")}
    assert fusion == {"fusion.queries", "fusion.value.weight"}


def test_parameter_names_of_the_earlier_pools_are_kept() -> None:
    """Fine-tuned checkpoints load strictly: each pool's own parameters keep their names."""
    def own(clf: Classifier) -> list[str]:
        return sorted(k for k in clf.state_dict() if not k.startswith(("tokenizer.", "encoder.")))

    head = ["head.bias", "head.weight"]
    assert own(Classifier.from_mae(_mae(), 3, pool="mean")) == ["fc_norm.bias", "fc_norm.weight", *head]
    assert own(Classifier.from_mae(_mae(), 3, pool="cls")) == head
    fusion = sorted(["fusion.query", *(f"fusion.fc_{k}.{w}" for k in "qkvo" for w in ("weight", "bias"))])
    assert own(Classifier.from_mae(_mae(), 3, pool="cls_attn_sigmoid")) == sorted(fusion + head)
    body = _mae()
    body.encoder.cls_token = None  # an encoder pretrained without prefix tokens (Point-MAE)
    clf = Classifier(body, 3, pool="cls_max").eval()
    assert own(clf) == ["cls_pos", "cls_token", *head] and clf.head.in_features == 256
    x = _images(2)
    with torch.no_grad():
        tokens = clf.tokenizer(x)
        pos = clf.tokenizer.pos_embed(tokens.grid, tokens.coords).expand(2, -1, -1)  # B×N×D
        h = torch.cat([(clf.cls_token + clf.cls_pos).expand(2, -1, -1), tokens.x + pos], dim=1)  # B×(1+N)×D
        for block in clf.encoder.blocks:
            h = block(h)
        h = clf.encoder.norm(h)
        expected = clf.head(torch.cat([h[:, 0], h[:, 1:].max(1).values], 1))
        torch.testing.assert_close(clf(x), expected, rtol=1e-5, atol=1e-5)


def test_an_encoder_without_cls_takes_the_pools_that_need_none() -> None:
    body = _mae()
    body.encoder.cls_token = None
    x = _images(2)
    for pool in ("max", "mean_max", "attentive"):
        assert Classifier(body, 3, pool=pool)(x).shape == (2, 3)  # type: ignore[arg-type]
    for pool in ("cls_attn", "cls"):
        with pytest.raises(ValueError, match=f"pool='{pool}' but the encoder has no cls token"):
            Classifier(body, 3, pool=pool)  # type: ignore[arg-type]
