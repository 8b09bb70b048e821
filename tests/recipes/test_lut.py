"""LUT (recipes/masking/lut.py) against crossmodal_and_zoo.md B5 and naver-ai/lut's code: one noise, view 1 keeps
ids_shuffle[:K] and view 2 ids_shuffle[K:2K]; MAE on view 1 only; the BYOL term by hand; the EMA
teacher's update; LUT-B 124.25M; batch statistics over every process (SyncBN)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F  # noqa: N812
from torch import nn

import anymae
from anymae.core.masking import gather_tokens
from anymae.core.skeleton import Views
from anymae.core.skeleton.view_terms import CrossViewBYOL, SyncedBatchNorm1d


def test_lut_base_has_124_25m_trainable_parameters() -> None:
    model = anymae.create_model("lut_vit_base_patch16")
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert round(count / 1e6, 2) == 124.25
    heads = sum(p.numel() for p in model.terms[1].parameters())
    assert round(heads / 1e6, 2) == 12.60  # projector + predictor: 2 × (768·4096 + 2·4096 + 4096·768)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return anymae.create_model("lut_vit_tiny_patch4", depth=1, decoder_depth=1, head_mlp_dim=32)


X1, X2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)


def test_the_views_keep_consecutive_slices_of_one_noise() -> None:
    model = _tiny()
    noise = torch.rand(4, 64, generator=torch.Generator().manual_seed(5))
    out = model(Views((X1, X2)), noise=[noise, None])
    shuffle = torch.argsort(noise, dim=1)
    assert torch.equal(out.plans[0].keep, shuffle[:, :16]) and torch.equal(out.plans[1].keep, shuffle[:, 16:32])


def test_mae_reads_view_one_only_and_the_byol_term_matches_a_hand_computation() -> None:
    model = _tiny().train()
    seeds = torch.tensor([1, 2, 3, 4])
    out = model(Views((X1, X2)), seeds=seeds)
    assert list(out.parts) == ["rec", "lut"]
    assert torch.allclose(out.loss, out.parts["rec"] + 0.25 * out.parts["lut"], atol=1e-6)
    term, teacher = model.terms[1], model.teachers["ema"]
    planned = model.plan_masks(model.tokenize(X1), seeds=seeds, views=[model.tokenize(X1), model.tokenize(X2)],
                               view_inputs=[X1, X2])
    student = []
    for x, p in zip((X1, X2), planned):
        tokens = model.tokenize(x)
        visible = model.run_encoder(gather_tokens(tokens.x, p.plan.keep), tokens, p.plan.keep).latent[:, 1:]
        student.append(term.predictor(term.projector(visible.mean(1))))
    with torch.no_grad():
        proj = teacher.part("terms.1.projector")
        target = [proj(teacher(x).tokens.mean(1)) for x in (X1, X2)]
    cross = [(2 - 2 * F.cosine_similarity(student[v], target[u], dim=-1)).mean() for u, v in ((0, 1), (1, 0))]
    assert torch.allclose(out.parts["lut"], (cross[0] + cross[1]) / 2, atol=1e-5)
    other = model(Views((X1, X2 + 1.0)), seeds=seeds)  # view 2 changes the BYOL term, never the reconstruction
    assert torch.equal(other.parts["rec"], out.parts["rec"]) and not torch.equal(other.parts["lut"], out.parts["lut"])


def test_the_ema_teacher_holds_the_encoder_and_projector_and_follows_the_cosine() -> None:
    model = _tiny()
    teacher = model.teachers["ema"]
    assert teacher.sources == ("tokenizer", "encoder", "terms.1.projector")
    assert teacher.momentum(0) == 0.996 and teacher.momentum(1000) == 1.0
    before = teacher.part("terms.1.projector")[0].weight.clone()
    with torch.no_grad():
        model.terms[1].projector[0].weight.add_(1.0)
    model.after_step(1)
    student = model.terms[1].projector[0].weight
    assert torch.allclose(teacher.part("terms.1.projector")[0].weight, 0.996 * before + 0.004 * student, atol=1e-6)
    assert not any(p.requires_grad for p in teacher.parameters())


def _bn_worker(rank: int, port: int, x: torch.Tensor, ref_y: torch.Tensor, ref_grad: torch.Tensor) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        bn = SyncedBatchNorm1d(5)
        mine = x[rank * 3 : (rank + 1) * 3].clone().requires_grad_(True)  # 3 of the 6 samples
        y = bn(mine)
        (y * torch.arange(5.0)).sum().backward()
        assert torch.allclose(y, ref_y[rank * 3 : (rank + 1) * 3], atol=1e-5)
        assert torch.allclose(mine.grad, ref_grad[rank * 3 : (rank + 1) * 3], atol=1e-5)
    finally:
        dist.destroy_process_group()


def test_synced_batch_norm_uses_the_statistics_of_every_process(tmp_path: Path) -> None:
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1
    full = x.clone().requires_grad_(True)
    y = nn.BatchNorm1d(5)(full)  # one process with the whole batch
    (y * torch.arange(5.0)).sum().backward()
    port = 29000 + os.getpid() % 1000
    mp.start_processes(_bn_worker, args=(port, x, y.detach(), full.grad), nprocs=2, join=True, start_method="fork")


def test_byol_needs_its_teacher() -> None:
    model = _tiny()
    del model.teachers["ema"]
    with pytest.raises(ValueError, match="needs an EMA teacher named 'ema'"):
        model(Views((X1, X2)), seeds=torch.arange(4))
    with pytest.raises(ValueError, match="two or more branches"):
        CrossViewBYOL(8, branches=(0,))
