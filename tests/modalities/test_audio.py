"""Audio-MAE modality: presets' sizes, tokens, masking, windowed decoder, pictures, interop."""

from __future__ import annotations

import timm
import torch
from einops import rearrange

import anymae
from anymae.core.masking import GridLineMasking, SampleRNG, make_plan
from anymae.core.decoders.windowed import WindowedBlock
from anymae.modalities.audio import FILL_BASE
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.interop.export import timm_kwargs
from anymae.tasks.interop.mae import export_timm_encoder
from anymae.tasks.interop.audiomae import (
    anymae_to_official_audiomae,
    official_audiomae_finetuned_to_classifier,
    official_audiomae_to_anymae,
)

TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2, "decoder_embed_dim": 32, "decoder_num_heads": 2,
        "local_decoder_depth": 2, "decoder_depth": 1}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_vit_base_parameter_counts_match_the_reference() -> None:
    with torch.device("meta"):
        local = anymae.create_model("audiomae_vit_base_patch16")
        glob = anymae.create_model("audiomae_vit_base_patch16", decoder="global")
    # encoder: patch embed (1 channel) + 12 ViT-B blocks + cls + norm; positions are fixed buffers
    assert _count(local.tokenizer) + _count(local.encoder) == 197_376 + 12 * 7_087_872 + 768 + 1_536
    # local decoder: 16 Swin-v2-cr blocks of 3,159,712 (measured on the reference block) + embed, mask, norm, pred
    assert _count(local.decoder) == 16 * 3_159_712 + 393_728 + 512 + 1_024 + 131_328 == 51_081_984
    assert _count(glob.decoder) == 8 * 3_152_384 + 393_728 + 512 + 1_024 + 131_328
    assert tuple(local.tokenizer.grid) == (64, 8) and local.masking.num_keep(512) == 102


def test_finetune_classifier_has_the_reference_85_66M_parameters() -> None:
    with torch.device("meta"):
        mae = anymae.create_model("audiomae_vit_base_patch16", decoder="global")
        body = anymae.create_model("audiomae_vit_base_patch16", decoder="global")
        body.decoder = None
        clf = Classifier(body, 527)
    assert _count(clf) == 85_659_407  # the AS-2M fine-tuning log's 85.66M (encoder.norm frozen, unused)
    assert mae.decoder.cfg.keep_prefix  # decoder_mode 0 keeps the cls token


def test_tokens_follow_the_reference_patch_order() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **TINY)
    x = torch.randn(2, 1, 128, 64)
    tokens = model.tokenizer(x)
    ref = rearrange(x.reshape(2, 1, 8, 16, 4, 16), "n c h p w q -> n (h w) (p q c)")  # reference einsum nhwpqc
    assert tokens.grid == (8, 4) and torch.equal(tokens.target, ref)
    assert torch.equal(model.tokenizer.untokenize(tokens.target, tokens), x)


def test_grid_line_masking_hides_whole_rows_and_columns() -> None:
    strategy = GridLineMasking(0.7, col_ratio=0.3)
    assert strategy.num_keep(512, (64, 8)) == 19 * 5
    plan = make_plan(strategy, (64, 8), 3, device="cpu", seeds=torch.tensor([1, 2, 3]))
    hidden = plan.mask.view(3, 64, 8)
    for b in range(3):
        rows_kept = (hidden[b] == 0).any(1)
        cols_kept = (hidden[b] == 0).any(0)
        assert int(rows_kept.sum()) == 19 and int(cols_kept.sum()) == 5
        assert torch.equal(hidden[b], 1 - torch.outer(rows_kept.float(), cols_kept.float()))  # brute force
        assert torch.equal(plan.keep[b], plan.keep[b].sort().values)  # visible in grid order, as the reference


def test_grid_line_masking_keeps_the_rows_with_the_smallest_noise() -> None:
    torch.manual_seed(0)
    rng = SampleRNG(1, generator=torch.Generator().manual_seed(4))
    scores = GridLineMasking(0.5, col_ratio=0.5).noise((4, 4), rng)
    gen = torch.Generator().manual_seed(4)
    rows, cols = torch.rand(1, 4, generator=gen), torch.rand(1, 4, generator=gen)  # drawn in the same order
    keep_r, keep_c = rows[0].argsort()[:2], cols[0].argsort()[:2]
    visible = {int(r) * 4 + int(c) for r in keep_r for c in keep_c}
    assert set(scores[0].argsort()[:4].tolist()) == visible


def test_windowed_block_shifts_only_along_time() -> None:
    block = WindowedBlock(32, 2, (64, 8), (4, 4), (2, 0))
    assert block.shift_size == (2, 0) and block.window_size == (4, 4)  # timm alone would shift (2, 2)
    assert torch.equal(block.attn.logit_scale, torch.zeros(2))  # tau = 1


def test_local_decoder_attends_within_windows_only() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **{**TINY, "local_decoder_depth": 1}).eval()
    dec = model.decoder
    n = 32
    keep = torch.arange(0, n, 4).unsqueeze(0)  # 8 visible
    query = torch.tensor([[i for i in range(n) if i % 4]])
    latent = torch.randn(1, 1 + 8, 32)
    _, base = dec(latent, num_prefix=1, keep=keep, query=query, grid=(8, 4))
    changed = latent.clone()
    changed[0, 1] += 5.0  # visible token 0: grid cell (0, 0), window rows 0-3, cols 0-1
    _, out = dec(changed, num_prefix=1, keep=keep, query=query, grid=(8, 4))
    diff = (out - base).abs().amax(-1)[0]  # per query token
    rows, cols = query[0] // 4, query[0] % 4
    inside = (rows < 4) & (cols < 2)
    assert bool((diff[inside] > 1e-6).all()) and bool((diff[~inside] == 0).all())


def test_local_decoder_output_does_not_depend_on_token_order() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **TINY).eval()
    x = model.tokenizer.example(2)
    with torch.no_grad():
        a = model(x, seeds=torch.tensor([5, 6]))
        perm = torch.randperm(32)
        b = model(x, noise=a.plan.mask * 2 + torch.rand(2, 32)[:, perm] * 0.5)  # same sets, other order
    assert torch.allclose(a.loss, b.loss, atol=1e-6)


def test_pictures_have_low_frequencies_at_the_bottom_and_gray_fill() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **TINY)
    x = torch.full((1, 1, 128, 64), -1.5)
    x[..., 0] = 1.5  # energy only in mel bin 0
    pic = model.tokenizer.to_pictures(x)
    assert pic.shape == (1, 64, 128, 3)
    assert pic[0, -1].mean() > pic[0, 0].mean() + 100  # bright bottom row
    tokens = model.tokenizer(x)
    fill = model.tokenizer.picture_fill(tokens, 0.5)
    assert float(fill.flatten()[0]) == FILL_BASE * 1.5
    gray = model.tokenizer.to_pictures(model.tokenizer.untokenize(fill.expand(1, 32, 256), tokens))
    assert (gray == 128).all()


def test_official_format_round_trip_including_tau() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **TINY)
    with torch.no_grad():
        model.decoder.blocks[1].attn.logit_scale.fill_(0.25)
    official = anymae_to_official_audiomae(model.state_dict())
    assert "decoder_blocks.1.attn.tau" in official and official["pos_embed"].shape == (1, 33, 32)
    assert torch.allclose(official["decoder_blocks.1.attn.tau"], torch.exp(torch.tensor(-0.25)))
    back = official_audiomae_to_anymae(official)
    fresh = anymae.create_model("audiomae_tiny_patch16", **TINY)
    fresh.load_state_dict(back, strict=True)
    assert all(torch.allclose(v, back[k]) for k, v in model.state_dict().items())


def test_official_finetuned_checkpoint_loads_into_a_classifier() -> None:
    mae = anymae.create_model("audiomae_tiny_patch16", **TINY)
    clf = Classifier.from_mae(mae, 5)
    official = {k: v for k, v in anymae_to_official_audiomae(mae.state_dict()).items()
                if not k.startswith(("decoder", "mask_token", "norm."))}  # the reference deletes `norm`
    official |= {"fc_norm.weight": torch.rand(32), "fc_norm.bias": torch.rand(32),
                 "head.weight": torch.rand(5, 32), "head.bias": torch.rand(5)}
    state = official_audiomae_finetuned_to_classifier(official)
    clf.load_state_dict(state, strict=True)
    assert torch.equal(clf.head.weight, official["head.weight"]) and torch.equal(clf.encoder.norm.weight, torch.ones(32))


def test_encoder_exports_to_timm_strictly() -> None:
    model = anymae.create_model("audiomae_tiny_patch16", **TINY).eval()
    kwargs = timm_kwargs(model.config)
    assert kwargs["img_size"] == (128, 64) and kwargs["in_chans"] == 1
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs).eval()
    vit.load_state_dict(export_timm_encoder(model), strict=True)
    x = model.tokenizer.example(2)
    with torch.no_grad():
        ours = model.features(x).prefix[:, 0]
        theirs = vit.forward_features(x)[:, 0]
    assert torch.allclose(ours, theirs, atol=1e-5)
