"""Point-cloud modality: grouping, tokenizer, masks, Chamfer loss, presets, two-mask model, pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anymae
from anymae.core.losses import chamfer_l2, get_loss
from anymae.core.masking import SampleRNG, make_masking, make_plan
from anymae.core.skeleton import consistency_loss
from anymae.modalities.points import PointTokenizer
from anymae.modalities.points_grouping import farthest_point_sample, fps_numpy, group_points, knn_indices
from anymae.tasks.interop.points import (
    anymae_to_point_cmae,
    anymae_to_point_mae,
    point_cmae_to_anymae,
    point_mae_to_anymae,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _fps_loop(pts: np.ndarray, num: int, skip_near_origin: bool = True) -> list[int]:
    """The pointnet2 kernel's rules, one point at a time (start 0, |p|² <= 1e-3 skipped, first max)."""
    n = len(pts)
    temp = [1e10] * n
    idx = [0]
    for _ in range(1, num):
        old = pts[idx[-1]]
        best, besti = -1.0, 0
        for k in range(n):
            if skip_near_origin and float((pts[k] ** 2).sum()) <= 1e-3:
                continue
            d = float(((pts[k] - old) ** 2).sum())
            temp[k] = min(d, temp[k])
            if temp[k] > best:
                best, besti = temp[k], k
        idx.append(besti)
    return idx


def test_fps_matches_the_kernel_rules_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(3, 200, 3, generator=g)
    xyz[1, 5] = 0.01  # near the origin: never chosen after the first
    xyz[2, 0] = 0.0  # index 0 is chosen first even at the origin
    got = farthest_point_sample(xyz, 16)
    for b in range(3):
        assert got[b].tolist() == _fps_loop(xyz[b].double().numpy(), 16)
    assert 5 not in got[1].tolist() and got[2, 0] == 0
    plain = farthest_point_sample(xyz, 16, skip_near_origin=False)
    assert plain[0].tolist() == _fps_loop(xyz[0].double().numpy(), 16, skip_near_origin=False)


def test_fps_numpy_starts_at_zero_and_spreads() -> None:
    pts = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    idx = fps_numpy(pts, 32)
    assert idx[0] == 0 and len(set(idx.tolist())) == 32
    assert idx.tolist() == _fps_loop(pts.astype(np.float64), 32, skip_near_origin=False)


def test_knn_matches_a_full_sort_and_groups_are_centred() -> None:
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(2, 128, 3, generator=g)
    groups, centers = group_points(xyz, 8, 16)
    assert groups.shape == (2, 8, 16, 3) and centers.shape == (2, 8, 3)
    idx = knn_indices(centers, xyz, 16)
    for b in range(2):
        for c in range(8):
            d = ((xyz[b] - centers[b, c]) ** 2).sum(-1)
            assert idx[b, c].tolist() == torch.sort(d, stable=True).indices[:16].tolist()
            assert torch.allclose(groups[b, c] + centers[b, c], xyz[b, idx[b, c]])
    assert torch.all(groups[:, :, 0] == 0)  # each center is its own nearest point


def test_tokenizer_targets_untokenize_to_the_grouped_points() -> None:
    tok = PointTokenizer(num_points=96, num_group=6, group_size=16, dim=32)
    x = tok.example(2)
    tokens = tok(x)
    assert tokens.x.shape == (2, 6, 32) and tokens.target.shape == (2, 6, 48) and tokens.grid == (6,)
    groups, centers = group_points(x, 6, 16)
    assert torch.equal(tokens.coords, centers)
    back = tok.untokenize(tokens.target, tokens).reshape(2, 6, 16, 3)
    assert torch.allclose(back, groups + centers.unsqueeze(2), atol=1e-6)
    with pytest.raises(ValueError, match="B×N×3"):
        tok(torch.zeros(2, 10, 4))


def test_preset_parameter_counts_match_the_reference_layer_shapes() -> None:
    model = anymae.create_model("point_mae")
    count = lambda pre: sum(p.numel() for n, p in model.named_parameters() if n.startswith(pre))
    pointnet = (3 * 128 + 128) + 256 + (128 * 256 + 256) + (512 * 512 + 512) + 1024 + (512 * 384 + 384)
    pos_mlp = (3 * 128 + 128) + (128 * 384 + 384)
    block = 2 * 2 * 384 + 384 * 1152 + (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384)
    assert count("tokenizer.") + count("encoder.") == pointnet + pos_mlp + 12 * block + 768 == 21_825_024
    assert count("decoder.") == 384 + pos_mlp + 4 * block + 768 + (384 * 96 + 96) == 7_181_408
    enc = model.encoder
    assert enc.cls_token is None and enc.cfg.pos_every_block and not enc.cfg.qkv_bias
    assert enc.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    assert model.decoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    cmae = anymae.create_model("point_cmae")
    assert cmae.num_branches == 2 and [t.name for t in cmae.terms] == ["rec1", "rec2", "consistency"]
    assert sum(p.numel() for p in cmae.decoder2.parameters()) == 7_181_408


def test_positions_are_readded_at_every_block() -> None:
    model = anymae.create_model("point_mae_tiny", num_points=64, num_group=8, group_size=8).eval()
    x = model.tokenizer.example(2)
    feats = model.features(x)
    tokens = model.tokenizer(x)
    pos = model.tokenizer.pos_embed(tokens.grid, tokens.coords)
    h = tokens.x
    for block in model.encoder.blocks:
        h = block(h + pos)
    assert torch.allclose(feats.tokens, model.encoder.norm(h), atol=1e-5)


def test_random_hide_masking_hides_int_ratio_groups() -> None:
    strategy = make_masking("random_hide", 0.6)
    assert strategy.num_keep(64) == 26  # 38 hidden, as Point-MAE (MAE's rounding would keep 25)
    plan = make_plan(strategy, (64,), 3, device="cpu", seeds=torch.arange(3))
    assert plan.hide.shape == (3, 38) and plan.mask.sum(1).tolist() == [38.0] * 3


def test_nearest_anchor_masking_hides_the_nearest_centers() -> None:
    coords = torch.rand(4, 64, 3, generator=torch.Generator().manual_seed(2))
    strategy = make_masking("nearest_anchor", 0.6)
    rng = SampleRNG(4, seeds=[7, 8, 9, 10])
    noise = strategy.noise((64,), rng, coords)
    plan = make_plan(strategy, (64,), 4, device="cpu", noise=noise)
    anchors = (SampleRNG(4, seeds=[7, 8, 9, 10]).rand(1)[:, 0] * 64).long()
    for b in range(4):
        d = (coords[b] - coords[b, anchors[b]]).norm(dim=-1)
        assert set(plan.hide[b].tolist()) == set(torch.argsort(d)[:38].tolist())
    with pytest.raises(ValueError, match="coordinates"):
        strategy.noise((64,), rng, None)


def test_chamfer_l2_equals_a_double_loop() -> None:
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 3, 4 * 3, generator=g), torch.randn(2, 3, 4 * 3, generator=g)
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    per = torch.zeros(2, 3)
    for b in range(2):
        for m in range(3):
            a, t = pred[b, m].view(4, 3), target[b, m].view(4, 3)
            d1 = sum(min(float(((a[i] - t[j]) ** 2).sum()) for j in range(4)) for i in range(4)) / 4
            d2 = sum(min(float(((t[j] - a[i]) ** 2).sum()) for i in range(4)) for j in range(4)) / 4
            per[b, m] = d1 + d2
    assert chamfer_l2(pred, target, weight).item() == pytest.approx(float((per * weight).sum() / 4), rel=1e-6)
    assert chamfer_l2(pred, target).item() == pytest.approx(float(per.mean()), rel=1e-6)
    assert get_loss("chamfer_l2")(target, target, None).item() == 0.0
    perm = target.view(2, 3, 4, 3)[:, :, torch.tensor([2, 0, 3, 1])].reshape(2, 3, 12)
    assert chamfer_l2(perm, target).item() == pytest.approx(0.0, abs=1e-7)  # order-free


def test_consistency_diagonal_and_row_match_brute_force() -> None:
    g = torch.Generator().manual_seed(4)
    h1, h2 = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    both = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=torch.bool)
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))
    pairs = [(b, t) for b in range(2) for t in range(5) if both[b, t]]
    diag = sum(1 - cos(h1[b, t], h2[b, t]) + 1e-8 for b, t in pairs) / len(pairs)
    row = sum(sum(1 - cos(h1[b, t], h2[b, j]) + 1e-8 for j in range(5)) for b, t in pairs) / (len(pairs) * 5)
    assert consistency_loss(h1, h2, both, "diagonal").item() == pytest.approx(diag, rel=1e-5)
    assert consistency_loss(h1, h2, both, "row").item() == pytest.approx(row, rel=1e-5)
    assert consistency_loss(h1, h2, torch.zeros_like(both)).item() == 0.0


def test_two_mask_model_total_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("point_cmae", num_points=64, num_group=8, group_size=8, depth=1, decoder_depth=1,
                                embed_dim=32, decoder_embed_dim=32, num_heads=2, decoder_num_heads=2)
    model.eval()
    out = model(model.tokenizer.example(2), seeds=torch.tensor([3, 4]))
    p = out.parts
    assert out.loss.item() == pytest.approx(1000 * (p["rec1"] + p["rec2"]).item() + p["consistency"].item(), rel=1e-5)
    assert not torch.equal(out.plan.hide.sort(1).values, out.plans[1].hide.sort(1).values)
    assert out.mask.sum(1).tolist() == [4.0, 4.0] and out.plans[1].mask.sum(1).tolist() == [4.0, 4.0]


def test_point_mae_state_dict_round_trip_and_reference_names() -> None:
    model = anymae.create_model("point_mae_tiny", num_points=64, num_group=8, group_size=8)
    state = model.state_dict()
    ref = anymae_to_point_mae(state)
    for key in ("MAE_encoder.encoder.first_conv.0.weight", "MAE_encoder.encoder.second_conv.1.running_mean",
                "MAE_encoder.pos_embed.2.weight", "MAE_encoder.blocks.blocks.3.attn.qkv.weight",
                "MAE_encoder.norm.bias", "mask_token", "decoder_pos_embed.0.bias", "MAE_decoder.blocks.1.mlp.fc2.weight",
                "MAE_decoder.norm.weight", "increase_dim.0.weight"):
        assert key in ref, key
    assert ref["increase_dim.0.weight"].shape == (24, 128, 1)  # Conv1d(D, 3K, 1)
    assert "MAE_encoder.blocks.blocks.0.attn.qkv.bias" not in ref  # qkv_bias False
    back = point_mae_to_anymae({f"module.{k}": v for k, v in ref.items()})
    model.load_state_dict(back, strict=True)
    with pytest.raises(KeyError, match="no mapping"):
        point_mae_to_anymae({**ref, "extra.weight": torch.zeros(1)})
    cmae = anymae.create_model("point_cmae", **anymae.core.registry.get_entry("point_cmae").small)
    ref2 = anymae_to_point_cmae(cmae.state_dict())
    assert {"mask_token1", "mask_token2", "MAE_decoder_.norm.weight", "increase_dim_.0.bias"} <= set(ref2)
    cmae.load_state_dict(point_cmae_to_anymae({**ref2, "MAE_encoder.cls_token1": torch.zeros(1, 1, 48)}), strict=True)


def test_pictures_drop_hidden_groups() -> None:
    from anymae.tasks.pictures.figures import reconstruction_panels

    torch.manual_seed(0)
    model = anymae.create_model("point_mae_tiny", num_points=64, num_group=8, group_size=8)
    x = model.tokenizer.example(2)
    panels = reconstruction_panels(model, x, seeds=torch.arange(2), render={"size": 64})
    assert set(panels) == {"input", "masked", "reconstruction"}
    assert all(p.shape == (2, 64, 64, 3) and p.dtype == np.uint8 for p in panels.values())
    white = lambda img: int((img.sum(-1) == 765).sum())
    assert white(panels["masked"][0]) > white(panels["input"][0])  # fewer points drawn
    fill = model.tokenizer.picture_fill(model.tokenizer(x))
    assert torch.isnan(fill).all()


def test_masked_picture_matches_its_legend_hidden_groups_not_drawn() -> None:
    from anymae.tasks.pictures.figures import panel_titles, reconstruction_panels, run_for_pictures

    torch.manual_seed(0)
    model = anymae.create_model("point_mae_tiny", num_points=64, num_group=8, group_size=8)
    x = model.tokenizer.example(2)
    assert panel_titles(model)["masked"] == "masked (hidden = not drawn)"
    vit = anymae.create_model("mae_vit_tiny_patch4", img_size=32, depth=1, decoder_depth=1)
    assert panel_titles(vit)["masked"] == "masked (hidden = gray)"  # the default legend stays
    panels = reconstruction_panels(model, x, seeds=torch.arange(2), render={"size": 64})
    out = run_for_pictures(model, x, seeds=torch.arange(2))
    groups = out.tokens.target.view(2, 8, 8, 3) + out.tokens.coords.unsqueeze(2)  # B×G×K×3 absolute points
    for b in range(2):
        visible = groups[b][out.mask[b] == 0].reshape(1, -1, 3)  # 1×(G_visible·K)×3
        assert 0 < visible.shape[1] < 64
        expected = model.tokenizer.to_pictures(visible, size=64)[0]
        assert np.array_equal(panels["masked"][b], expected)  # exactly the visible points, nothing else
