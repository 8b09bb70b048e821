"""Distillation terms against hand computations: DMAE's alignment (teacher on the student's visible
set), MaskAlign's dynamic alignment, MR-MAE's mimic, CAE's latent alignment; the teacher runs once per pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import anymae
from anymae.core.masking import gather_tokens
from anymae.core.targets.teacher_features import TeacherRequest, teacher_pass

SMALL = {"img_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}
DEC = {"decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2}


def _blocks(encoder, tokenizer, x, index, upto):
    """Block `upto`'s output (0-based, before the final norm) of `encoder` on the tokens at `index`: B×(1+M)×D."""
    tok = tokenizer(x)
    pos = tokenizer.pos_embed(tok.grid, None)
    h = gather_tokens(tok.x, index) + gather_tokens(pos, index)
    h = torch.cat([encoder.cls_token.expand(x.shape[0], -1, -1), h], dim=1)
    for blk in encoder.blocks[: upto + 1]:
        h = blk(h)
    return h


def _count_calls(teacher):
    calls = []
    teacher.register_forward_pre_hook(lambda _m, args, kwargs: calls.append(kwargs), with_kwargs=True)
    return calls


def test_dmae_alignment_matches_hand_computation_and_shares_ids_keep() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL, **DEC, student_layer=1, teacher_layer=2)
    teacher = model.teachers["teacher"]
    calls = _count_calls(teacher)
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    keep = out.plan.keep
    assert len(calls) == 1 and torch.equal(calls[0]["index"], keep)  # the teacher ran once, on ids_keep

    with torch.no_grad():
        t = _blocks(teacher.encoder, teacher.tokenizer, x, keep, 2)  # B×(1+Nv)×128
        s = _blocks(model.encoder, model.tokenizer, x, keep, 1)  # B×(1+Nv)×32
        head = model.terms[1].heads[0]
        want = (F.normalize(head(s), dim=-1) - F.normalize(t, dim=-1)).abs().mean()
    assert torch.allclose(out.parts["distill"], want, atol=1e-6)
    assert torch.allclose(out.loss, out.parts["rec"] + out.parts["distill"], atol=1e-6)


def test_mrmae_mimic_reads_final_visible_tokens() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("mrmae_vit_tiny_patch4", **SMALL, **DEC)
    teacher = model.teachers["teacher"]
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    keep = out.plan.keep
    with torch.no_grad():
        everything = torch.arange(16).expand(2, -1)
        t = teacher.encoder.norm(_blocks(teacher.encoder, teacher.tokenizer, x, everything, 5))[:, 1:]  # B×N×128
        s = model.encoder.norm(_blocks(model.encoder, model.tokenizer, x, keep, 1))[:, 1:]  # B×Nv×32
        want = F.mse_loss(model.terms[1].heads[0](s), gather_tokens(t, keep))
    assert torch.allclose(out.parts["mimic"], want, atol=1e-6)


def test_maskalign_dynamic_alignment_matches_hand_computation() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("maskalign_vit_tiny_patch4", **SMALL, top=2, fusion="sum")
    teacher = model.teachers["teacher"]
    calls = _count_calls(teacher)
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    assert len(calls) == 1 and calls[0]["index"] is None  # one pass, whole image: masking + term share it
    assert out.plan.keep.shape[1] == int(16 * 0.3)  # mask 0.7
    term = model.terms[1]
    assert term.layers == (4, 5) and term.mix.shape == (6, 2)
    keep = out.plan.keep
    with torch.no_grad():
        everything = torch.arange(16).expand(2, -1)
        hs = [_blocks(model.encoder, model.tokenizer, x, keep, i) for i in range(2)]  # B×(1+Nv)×32 each
        want = torch.zeros(())
        for j, layer in enumerate((4, 5)):
            y = F.layer_norm(_blocks(teacher.encoder, teacher.tokenizer, x, everything, layer), (128,))
            y = torch.cat([y[:, :1], gather_tokens(y[:, 1:], keep)], dim=1)  # cls + visible
            mixed = term.mix[layer, 0] * hs[0] + term.mix[layer, 1] * hs[1]
            want = want + 0.5 * 2 * F.smooth_l1_loss(term.heads[j](mixed), y)
    assert torch.allclose(out.parts["align"], want, atol=1e-6)
    assert out.parts["rec"] == 0 and torch.allclose(out.loss, want, atol=1e-6)


def test_maskalign_linear_fusion_starts_at_identity_plus_one_hundredth() -> None:
    model = anymae.create_model("maskalign_vit_tiny_patch4")
    term = model.terms[1]
    assert torch.allclose(term.mix, torch.eye(6) + 0.01)
    assert term.layers == (3, 4, 5) and len(term.heads) == 3
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    out.loss.backward()
    norm = model.encoder.norm  # not aligned: an exact zero gradient (DDP sees it used; AdamW leaves it as is)
    assert norm.weight.requires_grad and torch.equal(norm.weight.grad, torch.zeros(128))


def test_attention_masking_reads_the_teachers_cls_attention() -> None:
    from anymae.core.masking import MaskContext
    from anymae.core.targets.teacher_features import cls_attention_scores

    torch.manual_seed(0)
    model = anymae.create_model("maskalign_vit_tiny_patch4", **SMALL, top=1, fusion="sum")
    x = torch.randn(2, 3, 16, 16)
    cache: dict = {}
    scores = cls_attention_scores(MaskContext(tokens=model.tokenizer(x), model=model, inputs=x, cache=cache))
    attention = cache["teacher"][2].cls_attention()  # B×N, heads averaged
    assert torch.allclose(scores.exp(), attention, atol=1e-6)
    assert len(cache) == 1  # the masking's teacher pass is cached under the teacher's name


def test_teacher_pass_refuses_a_second_different_request() -> None:
    model = anymae.create_model("mrmae_vit_tiny_patch4", **SMALL, **DEC)
    x, cache = torch.randn(1, 3, 16, 16), {}
    teacher_pass(model, TeacherRequest(), x, cache)
    assert teacher_pass(model, TeacherRequest(), x, cache) is cache["teacher"][2]
    with pytest.raises(ValueError, match="same TeacherRequest"):
        teacher_pass(model, TeacherRequest(taps=(1,)), x, cache)
    with pytest.raises(ValueError, match="no teacher named 'other'"):
        teacher_pass(model, TeacherRequest("other"), x, {})


def test_cae_alignment_matches_a_no_grad_encoder_pass_on_the_hidden_tokens() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("cae_vit_tiny_patch4", **SMALL, **DEC, regressor_depth=1)
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    keep, hide = out.plan.keep, out.plan.hide
    assert hide.shape[1] == 8  # half of the 16 patches hidden
    with torch.no_grad():
        tok = model.tokenizer(x)
        enc_vis = model.run_encoder(gather_tokens(tok.x, keep), tok, keep)
        _, pred, hidden = model.decoder(enc_vis.latent, num_prefix=1, keep=keep, query=hide, grid=tok.grid,
                                        return_hidden=True)
        target = model.encoder.norm(_blocks(model.encoder, model.tokenizer, x, hide, 1))[:, 1:]  # B×Nm×32
        want = ((hidden[:, keep.shape[1]:] - target) ** 2).mean()
    assert pred.shape == (2, 8, 48) and hidden.shape == (2, 16, 32)
    assert torch.allclose(out.parts["align"], want, atol=1e-6)
    assert torch.allclose(out.loss, out.parts["rec"] + 2 * out.parts["align"], atol=1e-5)
